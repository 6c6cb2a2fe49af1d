"""Export: manifests written from the live org, the on-ramp for teams whose org already exists.

``render(live, ...)`` is pure: one file per template with its versions, one per prompt with its
traffic split, one per vector store with its indexes, in the format ``validate`` accepts (a
prompt's rendered system prompt becomes its ``systemPrompt``). Server-managed fields and the
management label are left out; nothing secret is ever in the live state. ``write`` puts the files
in place, refusing to overwrite an existing file unless forced.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import FileError
from reconciler.files import write_atomic
from reconciler.loader import dump_yaml
from reconciler.model import API_VERSION, MANAGED_LABEL, Kind
from reconciler.normalize import LiveState, Obj

T, V, P, S, X = (
    Kind.PROMPT_TEMPLATE.value,
    Kind.PROMPT_VERSION.value,
    Kind.PROMPT.value,
    Kind.TRAFFIC_SPLIT.value,
    Kind.VECTOR_INDEX.value,
)
MODELINE = "# yaml-language-server: $schema={}\n"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ExportFile:
    path: str  # relative to the output folder
    text: str
    refs: tuple[str, ...]


def _filename(name: str) -> str:
    return _SAFE.sub("_", name).strip("._") or "unnamed"


def _meta(name: str, obj: Obj | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    labels = {k: v for k, v in (obj.labels if obj else {}).items() if k != MANAGED_LABEL}
    if labels:
        meta["labels"] = labels
    return meta


def _doc(kind: str, name: str, obj: Obj | None, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": _meta(name, obj), "spec": spec}


def _spec(fields: dict[str, Any], drop: Iterable[str] = ("labels",)) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in set(drop)}


def _version_spec(obj: Obj) -> dict[str, Any]:
    template, _, version = obj.key.rpartition("@")
    f = obj.fields
    spec: dict[str, Any] = {
        "template": template,
        "version": version,
        "content": f["content"],
        "variables": f["variables"],
    }
    if f.get("rollbackDirective"):
        spec["rollbackDirective"] = True
    if "abTest" in f:
        spec["abTest"] = f["abTest"]
    if f.get("metadata"):
        spec["metadata"] = f["metadata"]
    return spec


def _split_spec(obj: Obj) -> dict[str, Any]:
    if "defaultVersion" in obj.fields:
        return {"prompt": obj.key, "defaultVersion": obj.fields["defaultVersion"]}
    return {
        "prompt": obj.key,
        "strategy": obj.fields["strategy"],
        "versions": [{"version": v, "weight": w} for v, w in obj.fields["versions"].items()],
    }


def render(
    live: LiveState,
    kinds: Iterable[str] = (),
    name: str | None = None,
    *,
    schema: str | None = None,
) -> list[ExportFile]:
    """The manifest files for the live objects, narrowed by kind and a regex on the identity.

    ``schema``: the manifest schema's path relative to the output folder; each file then starts
    with the editor modeline pointing there (files sit one folder down). None: no modeline."""
    head = MODELINE.format(f"../{schema}") if schema else ""

    def _yaml(docs: list[dict[str, Any]]) -> str:
        return head + "---\n".join(dump_yaml(d) for d in docs)

    wanted = set(kinds) or {T, V, P, S, X}
    rx = re.compile(name) if name else None

    def keep(o: Obj) -> bool:
        return o.kind in wanted and (rx is None or rx.search(o.key) is not None)

    files: list[ExportFile] = []
    for tpl in sorted(live.of_kind(T), key=lambda o: o.key):
        docs, refs = [], []
        if keep(tpl):
            docs.append(_doc(T, tpl.key, tpl, _spec(tpl.fields)))
            refs.append(tpl.ref)
        for ver in sorted(
            (v for v in live.of_kind(V) if v.key.rpartition("@")[0] == tpl.key), key=lambda o: o.key
        ):
            if keep(ver):
                docs.append(_doc(V, ver.key, ver, _version_spec(ver)))
                refs.append(ver.ref)
        if docs:
            files.append(
                ExportFile(f"templates/{_filename(tpl.key)}.yaml", _yaml(docs), tuple(refs))
            )
    skip = set(unexportable(live))
    for prompt in sorted(live.of_kind(P), key=lambda o: o.key):
        if prompt.ref in skip:
            continue
        docs, refs = [], []
        if keep(prompt):
            docs.append(_doc(P, prompt.key, prompt, _spec(prompt.fields)))
            refs.append(prompt.ref)
        split = live.get(f"{S}/{prompt.key}")
        if split is not None and keep(split):
            docs.append(_doc(S, prompt.key, None, _split_spec(split)))
            refs.append(split.ref)
        if docs:
            files.append(
                ExportFile(f"prompts/{_filename(prompt.key)}.yaml", _yaml(docs), tuple(refs))
            )
    by_store: dict[str, list[Obj]] = {}
    for idx in live.of_kind(X):
        if keep(idx):
            by_store.setdefault(idx.key.partition("/")[0], []).append(idx)
    for store, indexes in sorted(by_store.items()):
        docs = [
            _doc(X, i.key.partition("/")[2], i, {"vectorStore": store, **_spec(i.fields)})
            for i in sorted(indexes, key=lambda o: o.key)
        ]
        files.append(
            ExportFile(
                f"indexes/{_filename(store)}.yaml", _yaml(docs), tuple(i.ref for i in indexes)
            )
        )
    return files


def unexportable(live: LiveState) -> list[str]:
    """Prompts no manifest can describe: bound to no template (a prompt created without one,
    as seed 003 does) or to a template the org no longer lists. ``render`` leaves them out."""
    templates = {o.key for o in live.of_kind(T)}
    return sorted(p.ref for p in live.of_kind(P) if p.fields.get("template") not in templates)


def conflicts(files: Iterable[ExportFile], out_dir: str) -> list[str]:
    return [f.path for f in files if os.path.exists(os.path.join(out_dir, f.path))]


def write(files: Iterable[ExportFile], out_dir: str) -> list[str]:
    """Write every file (atomically each, through ``files.write_atomic``); the caller has
    checked conflicts. A folder that cannot be made or a file that cannot be written (a full
    disk, a read-only mount) is ``FileError`` naming it, with the files written before it."""
    written: list[str] = []
    for f in files:
        target = Path(out_dir, f.path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FileError(
                str(target.parent),
                f"cannot be created ({exc.strerror})",
                _written_so_far(written),
            ) from None
        try:
            write_atomic(str(target), f.text)
        except FileError as exc:
            raise FileError(exc.path, exc.reason, _written_so_far(written)) from None
        written.append(str(target))
    return written


def _written_so_far(written: list[str]) -> str:
    if not written:
        return "nothing was written; free space or choose another --out folder"
    return f"{len(written)} files were written before it; free space and export again with --force"
