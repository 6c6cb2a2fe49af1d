"""The view of `llmgw audit verify` (reconciler/views/audit.py).

Covers: the verdict line; with --last, the record the log ends at; without it, the last record
and why it matters; a broken log gives the verdict alone.
"""

from __future__ import annotations

from reconciler.audit import VerifyResult
from reconciler.views import audit


def test_verify() -> None:
    view = audit.view()
    intact = VerifyResult(True, 2, last_seq=2, last_hash="h2")
    assert view.verify("a.jsonl", intact, "h2").splitlines()[1] == (
        "ends at record 2 (h2), as expected"
    )
    text = view.verify("a.jsonl", intact, None)
    assert text.startswith(f"a.jsonl: {intact.message()}\nlast record: 2 h2\nA hash chain")
    broken = VerifyResult(False, 1, broken_at=2, reason="hash mismatch")
    assert view.verify("a.jsonl", broken, None) == "a.jsonl: broken at line 2: hash mismatch"
