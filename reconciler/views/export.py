"""The view of ``llmgw export``: one line per file written, a warning (stderr) per prompt no
manifest can describe, and the summary with the next step.

Export has one format (its output is the files). Pure string building: no printing, no I/O,
no click (``views.base``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.views.base import Style, View, choose, plain, registry

if TYPE_CHECKING:
    from reconciler.jobs import ExportRun, Target


class ExportView(View):
    format = "text"

    def written(self, path: str) -> str:
        return f"wrote {path}"

    def skipped(self, ref: str) -> str:
        """The stderr warning for a prompt left out (``export.unexportable``)."""
        return (
            f"llmgw: warning: not exported: {ref} is bound to no template llmgw can name (a "
            "manifest needs spec.template): bind it to a template, then export again"
        )

    def summary(self, run: ExportRun, target: Target, out_dir: str) -> str:
        objects = sum(len(f.refs) for f in run.files)
        return (
            f"Exported {objects} objects into {len(run.written)} files from {target.url} "
            f"({run.requests} requests). Next: `llmgw plan {out_dir}` shows the adoptions."
        )


VIEWS = registry(ExportView)
FORMATS = tuple(VIEWS)


def view(output_format: str = "text", style: Style = plain) -> ExportView:
    return choose(VIEWS, output_format, style)
