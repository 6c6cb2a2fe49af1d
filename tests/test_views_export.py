"""The view of `llmgw export` (reconciler/views/export.py).

Covers: the line per file written, the warning for a prompt no manifest can describe, and the
summary naming the next command.
"""

from __future__ import annotations

from types import SimpleNamespace

from reconciler.views import export


def test_lines() -> None:
    view = export.view()
    assert view.written("out/a.yaml") == "wrote out/a.yaml"
    assert view.skipped("Prompt/p").startswith("llmgw: warning: not exported: Prompt/p is bound")
    run = SimpleNamespace(
        files=[SimpleNamespace(refs=["a", "b"]), SimpleNamespace(refs=["c"])],
        written=["x", "y"],
        requests=4,
    )
    target = SimpleNamespace(url="http://127.0.0.1:1")
    assert view.summary(run, target, "out") == (
        "Exported 3 objects into 2 files from http://127.0.0.1:1 (4 requests). "
        "Next: `llmgw plan out` shows the adoptions."
    )
