"""Saved plans: the portable, versioned JSON form of a Plan (``plan --out``, ``--output json``).

A saved plan holds the format version, the git commit, the manifest paths as given and a hash of
their contents, the ignore file's path and hash (and the date its expiries were read on), the
target API URL, and for every operation its kind, identity, action, field diff, the precondition
it observed and the exact requests it will make (references to ids that do not exist yet are
``{"$ref": "Kind/key"}``). Every string goes through ``reconciler.redact`` on the way out, so it
never holds a secret.

A saved plan is checked, never trusted: apply derives the operations again from the recorded
manifests and the live org, and ``compare`` names every way the file differs from that
derivation (compared after the same redaction, so a masked value never counts as an edit).
Pure apart from ``save``/``load`` and the hashes of files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import __version__, files, formats, kinds
from reconciler import redact as redact_mod
from reconciler.diffing import DiffItem
from reconciler.errors import ConfigError
from reconciler.ignores import Entry
from reconciler.objects import SERVER_TIME, LiveState, Ref, ServerTime
from reconciler.operations import Operation, OpType, Plan, Request
from reconciler.text import shown, visible

FORMAT_VERSION = formats.FORMAT_VERSION  # "2.1": the family's (reconciler/formats.py)
TOOL = f"llmgw {__version__}"


@dataclass(frozen=True)
class Targeted:
    """A targeted plan's set (``--changed-since REF``): the objects the change touched, which it
    plans, and those it removed, which it only reports; a saved one is derived again on the same
    set, whatever the working tree's git history says by then."""

    changed_since: str  # REF as given
    commit: str  # the commit REF named
    objects: tuple[str, ...]  # "Kind/key" planned
    removed: tuple[str, ...] = ()  # "Kind/key" in REF's manifests, in none now

    def as_dict(self) -> dict[str, Any]:
        return {
            "changedSince": self.changed_since,
            "commit": self.commit,
            "objects": list(self.objects),
            "removed": list(self.removed),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Targeted | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise TypeError("targeted is not an object")
        refs = [data.get("objects"), data.get("removed", [])]
        if not all(isinstance(r, list) and all(isinstance(x, str) for x in r) for r in refs):
            raise TypeError("targeted.objects and .removed are lists of Kind/key strings")
        if not isinstance(data.get("changedSince"), str) or not isinstance(data.get("commit"), str):
            raise TypeError("targeted.changedSince and .commit are strings")
        return cls(data["changedSince"], data["commit"], tuple(refs[0]), tuple(refs[1]))


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    target: str
    paths: tuple[str, ...]
    manifests_hash: str
    git_commit: str | None = None
    environment: str | None = None
    requests_made: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    ignore_path: str | None = None  # as given, or the default file when present; None: none
    ignore_hash: str | None = None
    ignores_date: str | None = None  # the day the ignore entries' expiries were read on
    tool: str = TOOL
    raw_operations: tuple[Any, ...] = ()  # as the file holds them (load), for ``compare``
    targeted: Targeted | None = None


def manifests_hash(files: Sequence[str], cwd: str | None = None) -> str:
    """sha256 over each manifest file's path (relative to cwd) and bytes, in sorted order."""
    h = hashlib.sha256()
    base = os.path.abspath(cwd or os.getcwd())
    for f in sorted(os.path.relpath(os.path.abspath(p), base) for p in files):
        h.update(f.encode("utf-8") + b"\0")
        h.update(Path(base, f).read_bytes())
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


def file_hash(path: str | None) -> str | None:
    """sha256 of a file's bytes; None when there is no such file."""
    if path is None:
        return None
    try:
        return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _enc(value: Any) -> Any:
    if isinstance(value, Ref | ServerTime):
        return {"$ref": str(value)}
    if isinstance(value, dict):
        return {str(k): _enc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_enc(v) for v in value]
    return value


def _dec(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$ref"} and isinstance(value["$ref"], str):
            if value["$ref"] == SERVER_TIME:
                return ServerTime()
            kind, _, key = value["$ref"].partition("/")
            return Ref(kind, key)
        return {k: _dec(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dec(v) for v in value]
    return value


def operation_dict(op: Operation) -> dict[str, Any]:
    return {
        "action": op.action.value,
        "kind": op.kind,
        "identity": op.key,
        "reason": op.reason,
        "phase": int(op.phase),
        "destructive": op.destructive,
        "allowed": op.allowed,
        "covers": list(op.covers),
        "source": op.source,
        "remoteId": op.remote_id,
        "observed": op.observed,
        "diff": [_enc(d.as_dict()) for d in op.diff],
        "requests": [
            {
                "method": r.method,
                "path": r.path,
                "params": _enc(dict(r.params)),
                "body": _enc(r.body) if r.body is not None else None,
                "headers": dict(r.headers),
                "precondition": r.precondition,
            }
            for r in op.requests
        ],
    }


def _operation(d: dict[str, Any]) -> Operation:
    return Operation(
        action=OpType(d["action"]),
        kind=d["kind"],
        key=d["identity"],
        reason=d.get("reason", ""),
        phase=int(d.get("phase", 0)),
        diff=tuple(
            DiffItem(i["op"], i["path"], _dec(i.get("old")), _dec(i.get("new")))
            for i in d.get("diff", [])
        ),
        requests=tuple(
            Request(
                r["method"],
                r["path"],
                _dec(r.get("params") or {}),
                _dec(r["body"]) if r.get("body") is not None else None,
                dict(r.get("headers") or {}),
                r.get("precondition"),
            )
            for r in d.get("requests", [])
        ),
        observed=d.get("observed"),
        remote_id=d.get("remoteId"),
        destructive=bool(d.get("destructive")),
        allowed=bool(d.get("allowed", True)),
        covers=tuple(d.get("covers", [])),
        source=d.get("source", ""),
    )


def to_dict(saved: SavedPlan, *, verbose: bool = True) -> dict[str, Any]:
    """The file's content, redacted."""
    plan = saved.plan
    ops = plan.operations if verbose else tuple(plan.changes)
    data = {
        **formats.header(formats.PLAN),
        "tool": TOOL,
        "gitCommit": saved.git_commit,
        "environment": saved.environment,
        "target": saved.target,
        "manifests": {"paths": list(saved.paths), "hash": saved.manifests_hash},
        "ignoreFile": {
            "path": saved.ignore_path,
            "hash": saved.ignore_hash,
            "date": saved.ignores_date,
        },
        "prune": plan.prune,
        "targeted": saved.targeted.as_dict() if saved.targeted else None,
        "summary": {**plan.counts(), "text": plan.summary()},
        "requestsMade": saved.requests_made,
        "operations": [operation_dict(o) for o in ops],
        "orphaned": list(plan.orphaned),
        "unmanaged": list(plan.unmanaged),
        "warnings": [w.as_dict() for w in plan.warnings],
        **saved.extra,
    }
    return dict(redact_mod.scrub(data))


def dumps(saved: SavedPlan) -> str:
    return json.dumps(to_dict(saved), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def check_writable(path: str) -> None:
    """FileError unless ``save`` can write ``path`` (checked before a run reads the org)."""
    files.check_writable(path)


def save(saved: SavedPlan, path: str) -> None:
    """Write the plan atomically (FileError when it cannot)."""
    files.write_atomic(path, dumps(saved))


def _check_format(path: str, data: Any) -> None:
    """ConfigError unless ``data`` is a saved plan of a format this llmgw reads: any
    ``formatVersion`` of its major (``"2.0"``, ``"2.7"``: fields it does not know are ignored,
    and so is the integer 2 of the releases before format 2.0), ``document`` "plan" or absent
    (those releases wrote none)."""
    reads = f"llmgw {__version__} reads plan format {formats.FORMAT_MAJOR}.x"
    again = f"re-run `llmgw plan --out` with llmgw {__version__}"
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a saved plan (not a JSON object)", again)
    version = data.get("formatVersion")
    if not formats.readable(version):
        major = formats.major(version)
        if major is not None and major > formats.FORMAT_MAJOR:
            raise ConfigError(
                f"{path}: unsupported plan format {shown(version)}: written by a newer llmgw "
                f"({visible(str(data.get('tool') or 'unknown'), 80)}); {reads}",
                f"apply it with an llmgw that reads format {major}.x, or {again}",
            )
        given = shown(version) if "formatVersion" in data else "none"
        raise ConfigError(f"{path}: unsupported plan format {given}; {reads}", again)
    document = data.get("document", formats.PLAN)
    if document != formats.PLAN:
        raise ConfigError(
            f"{path}: not a saved plan: its document is {shown(document)}",
            "pass a file written by `llmgw plan --out`",
        )


def load(path: str) -> SavedPlan:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such plan file", "run `llmgw plan --out FILE` first"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{path}: not a saved plan ({exc})", "pass a file written by `llmgw plan --out`"
        ) from None
    _check_format(path, data)
    try:
        raw_ops = tuple(data["operations"])
        ops = tuple(_operation(o) for o in raw_ops)
        ignore = data.get("ignoreFile") or {}
        plan = Plan(
            ops,
            tuple(data.get("orphaned", [])),
            tuple(data.get("unmanaged", [])),
            (),
            bool(data.get("prune")),
        )
        return SavedPlan(
            plan,
            data["target"],
            tuple(data["manifests"]["paths"]),
            data["manifests"]["hash"],
            data.get("gitCommit"),
            data.get("environment"),
            int(data.get("requestsMade") or 0),
            ignore_path=ignore.get("path"),
            ignore_hash=ignore.get("hash"),
            ignores_date=ignore.get("date"),
            tool=str(data.get("tool") or "an unknown llmgw"),
            raw_operations=raw_ops,
            targeted=Targeted.from_dict(data.get("targeted")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"{path}: damaged plan file ({exc})", "re-run `llmgw plan --out`"
        ) from None


# -- checking a saved plan against its derivation ----------------------------------------------
_MISSING = object()
GIVE = "the manifests and the org give"


def _normal(value: Any) -> Any:
    """The JSON value a file holds for ``value`` (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value, ensure_ascii=False))


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON text: 0 and 0.0, or 1 and true, are different edits of a file."""
    if a is _MISSING or b is _MISSING:
        return a is b
    return json.dumps(a, sort_keys=True, ensure_ascii=False) == json.dumps(
        b, sort_keys=True, ensure_ascii=False
    )


def _json_diff(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if _same(a, b):
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{k}" if path else str(k)
            out += _json_diff(a.get(k, _MISSING), b.get(k, _MISSING), sub)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += _json_diff(x, y, f"{path}[{i}]")
        return out
    return [(path, a, b)]


def _val(v: Any) -> str:
    return "nothing" if v is _MISSING else shown(v)


def _ident(d: Any) -> tuple[str, str]:
    if not isinstance(d, dict):
        return ("?", "?")
    return (str(d.get("action")), f"{d.get('kind')}/{d.get('identity')}")


def _request_line(r: Any) -> str:
    if not isinstance(r, dict):
        return shown(r)
    return f"{r.get('method')} {r.get('path')}"


def _operation_differences(n: int, have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    where = f"operation {n} ({want.get('kind')}/{want.get('identity')})"
    out: list[str] = []
    hreqs, wreqs = have.get("requests"), want.get("requests") or []
    if not isinstance(hreqs, list) or len(hreqs) != len(wreqs):
        count = len(hreqs) if isinstance(hreqs, list) else 0
        listed = ", ".join(_request_line(r) for r in hreqs) if isinstance(hreqs, list) else ""
        out.append(
            f"{where}: the plan file says {count} request(s) ({listed or 'none'}); {GIVE} "
            f"{len(wreqs)} ({', '.join(_request_line(r) for r in wreqs) or 'none'})"
        )
    else:
        for k, (h, w) in enumerate(zip(hreqs, wreqs, strict=True), start=1):
            label = f"{where}" + (f", request {k}" if len(wreqs) > 1 else "")
            if not isinstance(h, dict):
                out.append(f"{label}: the plan file says {shown(h)}; {GIVE} {_request_line(w)}")
                continue
            if not (
                _same(h.get("method"), w.get("method")) and _same(h.get("path"), w.get("path"))
            ):
                out.append(
                    f"{label}: the plan file says {_request_line(h)}; {GIVE} {_request_line(w)}"
                )
            rest_h = {x: y for x, y in h.items() if x not in ("method", "path")}
            rest_w = {x: y for x, y in w.items() if x not in ("method", "path")}
            for path, a, b in _json_diff(rest_h, rest_w):
                out.append(f"{label} {path}: the plan file says {_val(a)}; {GIVE} {_val(b)}")
    rest_h = {x: y for x, y in have.items() if x != "requests"}
    rest_w = {x: y for x, y in want.items() if x != "requests"}
    for path, a, b in _json_diff(rest_h, rest_w):
        out.append(f"{where} {path}: the plan file says {_val(a)}; {GIVE} {_val(b)}")
    return out


def compare(
    raw_operations: Sequence[Any], derived: Sequence[Operation], *, limit: int = 5
) -> tuple[list[str], int]:
    """How the operations a plan file holds differ from ``derived`` (what the manifests and the
    live org give now): the first ``limit`` differences, and how many more there are. Compared
    as the file would hold the derivation (redacted, as JSON), operation by operation in order:
    action, kind, identity, then each request's method, path, params, body, headers and
    precondition, then every other field."""
    want = [_normal(redact_mod.scrub(operation_dict(op))) for op in derived]
    have = [_normal(op) for op in raw_operations]
    hid, wid = [_ident(d) for d in have], [_ident(d) for d in want]
    out: list[str] = []
    if hid != wid:
        hset, wset = Counter(hid), Counter(wid)
        wrefs = {ref: action for action, ref in wid}
        hrefs = {ref for _, ref in hid}
        for i, (action, ref) in enumerate(hid, start=1):
            if (action, ref) in wset:
                continue
            if ref in wrefs:
                out.append(
                    f"operation {i} ({ref}): the plan file says {action}; {GIVE} {wrefs[ref]}"
                )
            else:
                out.append(
                    f"operation {i} ({action} {ref}): {GIVE} no such operation (it was added to "
                    "the plan file)"
                )
        for j, (action, ref) in enumerate(wid, start=1):
            if (action, ref) not in hset and ref not in hrefs:
                out.append(
                    f"{GIVE} operation {j} ({action} {ref}), which the plan file lacks (it was "
                    "removed from it)"
                )
        if not out:
            k = next(i for i, (x, y) in enumerate(zip(hid, wid, strict=True)) if x != y)
            out.append(
                f"operation {k + 1}: the plan file has {' '.join(hid[k])} there; {GIVE} "
                f"{' '.join(wid[k])} (the operations were reordered)"
            )
    else:
        for n, (h, w) in enumerate(zip(have, want, strict=True), start=1):
            out += _operation_differences(n, h, w)
    return out[:limit], max(0, len(out) - limit)


# -- a saved plan against its derivation ----------------------------------------------------
def stale_reasons(result: Plan, live: LiveState) -> list[str]:
    """Every planned object (no-ops included) that moved since the plan observed it."""
    reasons = []
    for op in result.operations:
        have = live.get(op.ref)
        resource = kinds.resource(op.kind)
        if resource.owner is not None and have is None:  # a part lives in its owner's object
            have = live.get(f"{resource.owner}/{op.key}")
        now = have.precondition if have is not None else None
        if op.action == OpType.CREATE:
            if have is not None:
                reasons.append(f"{op.ref}: created in the org since the plan")
        elif have is None:
            reasons.append(f"{op.ref}: deleted from the org since the plan")
        elif op.observed is not None and now != op.observed:
            what = resource.precondition_word
            reasons.append(
                f"{op.ref}: changed in the org since the plan ({what} {op.observed} -> {now})"
            )
    return reasons


def moved_since(
    saved: SavedPlan, derived: Plan, expired: Sequence[Entry], today: dt.date
) -> list[str]:
    """Differences between a saved plan and its derivation that the org or the calendar
        explain (so the plan is stale, not edited): an ignore entry (of ``expired``) that expired
    after the plan was made, an object labelled since and in no manifest."""
    reasons = []
    made = None
    try:
        made = dt.date.fromisoformat(saved.ignores_date or "")
    except ValueError:
        pass
    for e in expired:
        if made is not None and made <= e.expires < today:
            reasons.append(
                f"ignore entry {e.identity} {e.field} expired on {e.expires.isoformat()}, after "
                f"the plan was made on {made.isoformat()}: the field is compared again"
            )
    known = {ref for op in saved.plan.operations for ref in (op.ref, *op.covers)}
    known.update(saved.plan.orphaned)
    for op in derived.changes:
        if op.action == OpType.DELETE and op.ref not in known:
            reasons.append(
                f"{op.ref}: labelled managed-by: llmgw and in no manifest since the plan was made"
            )
    return reasons
