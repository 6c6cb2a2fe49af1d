"""Saved plans: the portable, versioned JSON form of a Plan (``plan --out``, ``--output json``).

A saved plan holds the format version, the git commit, the manifest paths as given and a hash of
their contents, the target API URL, and for every operation its kind, identity, action, field
diff, the precondition it observed and the exact requests it will make (references to ids that do
not exist yet are ``{"$ref": "Kind/key"}``). It never holds a secret: credentials are not part of
a plan, and ``dump`` refuses a document containing the client secret. Round trip:
``load(dump(x)) == x``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.diffing import DiffItem
from reconciler.errors import ConfigError
from reconciler.normalize import Ref
from reconciler.planner import Operation, OpType, Plan, Request

FORMAT_VERSION = 1


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


def manifests_hash(files: Sequence[str], cwd: str | None = None) -> str:
    """sha256 over each manifest file's path (relative to cwd) and bytes, in sorted order."""
    h = hashlib.sha256()
    base = os.path.abspath(cwd or os.getcwd())
    for f in sorted(os.path.relpath(os.path.abspath(p), base) for p in files):
        h.update(f.encode("utf-8") + b"\0")
        h.update(Path(base, f).read_bytes())
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


def _enc(value: Any) -> Any:
    if isinstance(value, Ref):
        return {"$ref": str(value)}
    if isinstance(value, dict):
        return {str(k): _enc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_enc(v) for v in value]
    return value


def _dec(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$ref"} and isinstance(value["$ref"], str):
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
    plan = saved.plan
    ops = plan.operations if verbose else tuple(plan.changes)
    return {
        "formatVersion": FORMAT_VERSION,
        "tool": f"llmgw {__version__}",
        "gitCommit": saved.git_commit,
        "environment": saved.environment,
        "target": saved.target,
        "manifests": {"paths": list(saved.paths), "hash": saved.manifests_hash},
        "prune": plan.prune,
        "summary": {**plan.counts(), "text": plan.summary()},
        "requestsMade": saved.requests_made,
        "operations": [operation_dict(o) for o in ops],
        "orphaned": list(plan.orphaned),
        "unmanaged": list(plan.unmanaged),
        "warnings": [w.as_dict() for w in plan.warnings],
        **saved.extra,
    }


def dumps(saved: SavedPlan, secret: str | None = None) -> str:
    text = json.dumps(to_dict(saved), indent=2, ensure_ascii=False, sort_keys=False)
    if secret and len(secret) >= 4 and secret in text:
        raise ConfigError(
            "refusing to write a plan that contains the client secret",
            "remove the secret from the manifests",
        )
    return text + "\n"


def save(saved: SavedPlan, path: str, secret: str | None = None) -> None:
    text = dumps(saved, secret)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


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
    if not isinstance(data, dict) or data.get("formatVersion") != FORMAT_VERSION:
        raise ConfigError(
            f"{path}: unsupported plan format "
            f"{data.get('formatVersion') if isinstance(data, dict) else '?'}",
            f"re-run `llmgw plan --out` with llmgw {__version__}",
        )
    try:
        ops = tuple(_operation(o) for o in data["operations"])
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
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path}: damaged plan file ({exc})", "re-run `llmgw plan --out`"
        ) from None
