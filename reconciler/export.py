"""Export: manifests written from the live org, the on-ramp for teams whose org already exists.

``render(live, ...)`` is pure: each kind says what files its live objects go into (one per
template with its versions, one per prompt with its traffic split, one per vector store with
its indexes), in the format ``validate`` accepts (a prompt's rendered system prompt becomes its
``systemPrompt``); this module merges them and writes YAML. Server-managed fields and the
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

from reconciler import kinds as registry
from reconciler.errors import FileError
from reconciler.files import write_atomic
from reconciler.loader import dump_yaml
from reconciler.objects import LiveState, Obj

MODELINE = "# yaml-language-server: $schema={}\n"


@dataclass(frozen=True)
class ExportFile:
    path: str  # relative to the output folder
    text: str
    refs: tuple[str, ...]


def render(
    live: LiveState,
    kinds: Iterable[str] = (),
    name: str | None = None,
    *,
    schema: str | None = None,
) -> list[ExportFile]:
    """The manifest files for the live objects, narrowed by kind and a regex on the identity.

    Each kind gives its documents (``Resource.export``); documents for one file (a template
    and its versions) are written into it in registry order, files in the order they first
    appear. ``schema``: the manifest schema's path relative to the output folder; each file
    then starts with the editor modeline pointing there (files sit one folder down). None: no
    modeline."""
    head = MODELINE.format(f"../{schema}") if schema else ""
    wanted = set(kinds) or set(registry.KINDS)
    rx = re.compile(name) if name else None

    def keep(o: Obj) -> bool:
        return o.kind in wanted and (rx is None or rx.search(o.key) is not None)

    files: dict[str, tuple[list[dict[str, Any]], list[str]]] = {}
    for resource in registry.REGISTRY:
        for part in resource.export(live, keep):
            docs, refs = files.setdefault(part.path, ([], []))
            docs.extend(part.docs)
            refs.extend(part.refs)
    return [
        ExportFile(path, head + "---\n".join(dump_yaml(d) for d in docs), tuple(refs))
        for path, (docs, refs) in files.items()
        if docs
    ]


def unexportable(live: LiveState) -> list[str]:
    """Objects no manifest can describe (a prompt bound to no template): ``render`` leaves
    them out, and the export names them."""
    return sorted(ref for r in registry.REGISTRY for ref in r.unexportable(live))


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
