"""The version of llmgw's machine-readable outputs, one for the whole family: the saved plan
(``plan --out``, the very document ``plan --output json`` prints), ``apply --output json`` (its
result, and ``--dry-run``'s request list), ``drift``, ``validate`` and ``rollout`` with
``--output json``. ``reconciler/schemas/plan.schema.json`` describes them all.

Each document opens with ``formatVersion`` (``"MAJOR.MINOR"``) and ``document`` (which one it
is: one of ``DOCUMENTS``). The semantics are Terraform's ``show -json`` ``format_version``: a
new minor only adds fields (a reader ignores the fields it does not know); anything else (a
field removed, renamed, retyped or meaning something else, a new value of an enumerated field)
is a new major, and a reader refuses a major it does not know. Pure: no I/O.
"""

from __future__ import annotations

import re

FORMAT_MAJOR = 2
FORMAT_MINOR = 1
FORMAT_VERSION = f"{FORMAT_MAJOR}.{FORMAT_MINOR}"
SCHEMA_FILE = "plan.schema.json"

PLAN, APPLY, DRY_RUN, DRIFT, VALIDATE, ROLLOUT, POLICY_TEST = (
    "plan",
    "apply",
    "apply-dry-run",
    "drift",
    "validate",
    "rollout",
    "policy-test",
)
DOCUMENTS = (PLAN, APPLY, DRY_RUN, DRIFT, VALIDATE, ROLLOUT, POLICY_TEST)

_VERSION = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")


def header(document: str) -> dict[str, str]:
    """The two fields every JSON output opens with."""
    assert document in DOCUMENTS, document
    return {"formatVersion": FORMAT_VERSION, "document": document}


def major(value: object) -> int | None:
    """The major version ``value`` names: ``"2.7"`` is 2; so is the integer 2 that saved plans
    of llmgw before format 2.0 carry. None when ``value`` is no format version at all."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str):
        m = _VERSION.fullmatch(value)
        if m is not None:
            return int(m.group(1))
    return None


def readable(value: object) -> bool:
    """Whether this llmgw reads a document of format ``value``: any minor of its major."""
    return major(value) == FORMAT_MAJOR
