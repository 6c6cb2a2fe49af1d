"""The view of ``llmgw audit verify``: the verdict on an audit log's hash chain, and the record
it ends at (what ``--last`` compares, since a chain cannot show records cut from its end).

One format. Pure string building: no printing, no I/O, no click (``views.base``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.views.base import Style, View, choose, plain, registry

if TYPE_CHECKING:
    from reconciler.audit import VerifyResult


class AuditView(View):
    format = "text"

    def verify(self, file: str, result: VerifyResult, last: str | None) -> str:
        lines = [f"{file}: {result.message()}"]
        if result.ok and last:
            lines.append(f"ends at record {result.last_seq} ({result.last_hash}), as expected")
        elif result.ok and result.last_hash:
            lines.append(
                f"last record: {result.last_seq} {result.last_hash}\n"
                "A hash chain cannot show whether records were cut from its end: compare that "
                "hash with the one the last apply printed, or pass --last HASH."
            )
        return "\n".join(lines)


VIEWS = registry(AuditView)
FORMATS = tuple(VIEWS)


def view(output_format: str = "text", style: Style = plain) -> AuditView:
    return choose(VIEWS, output_format, style)
