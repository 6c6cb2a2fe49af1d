"""The view of ``llmgw comment``: one line saying which comment now holds the plan.

One format. Pure string building: no printing, no I/O, no click (``views.base``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.text import plural
from reconciler.views.base import Style, View, choose, md_code, plain, registry

if TYPE_CHECKING:
    from reconciler.remote import Posted


class CommentView(View):
    format = "text"

    def posted(self, result: Posted, environment: str) -> str:
        what = {
            "created": "Created",
            "edited": "Edited",
            "unchanged": "Left unchanged (same text)",
        }.get(result.action, result.action)
        line = f"{what} the plan comment for {md_code(environment)} on {result.reference}"
        line += f": {result.url}" if result.url else f" (comment {result.comment_id})"
        notes = []
        if result.cut:
            notes.append("cut to the comment size limit, with a pointer to plan.json")
        if result.others:
            notes.append(
                f"{plural(result.others, 'other comment')} with the same marker left as they are"
            )
        return line + (f" ({'; '.join(notes)})" if notes else "")


VIEWS = registry(CommentView)
FORMATS = tuple(VIEWS)


def view(output_format: str = "text", style: Style = plain) -> CommentView:
    return choose(VIEWS, output_format, style)
