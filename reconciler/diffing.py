"""Field diffs: the only module that imports deepdiff.

Turns deepdiff's tree into the project's own immutable ``DiffItem``s (op, path, old, new).
Lists are compared whole: a changed list is one item holding the old and new lists (sets are
already sorted by normalisation, and an ordered list such as fallbackModels reads best whole).
Also a line diff of prompt texts with the placeholders added and removed. Pure: no I/O.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ADD, REMOVE, CHANGE = "add", "remove", "change"
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_PLACEHOLDER = re.compile(r"\{\{([a-zA-Z_][a-zA-Z0-9_]*)\}\}")


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class DiffItem:
    op: str  # add | remove | change
    path: str  # manifest field path: safetyGuardrails.maxTokens, versions["2.1.0"]
    old: Any
    new: Any

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.op != ADD:
            out["old"] = self.old
        if self.op != REMOVE:
            out["new"] = self.new
        return out


def format_path(parts: list[Any]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _PLAIN_KEY.match(str(p)):
            out += f".{p}" if out else str(p)
        else:
            out += f'["{p}"]'
    return out


def parse_path(path: str) -> list[str]:
    """``a.b["x.y"].c`` -> ``['a', 'b', 'x.y', 'c']`` (the inverse of format_path for keys)."""
    return [m.group(1) or m.group(2) for m in re.finditer(r'\["([^"]*)"\]|([^.\[\]]+)', path)]


def _get(container: Any, parts: list[Any]) -> Any:
    for p in parts:
        try:
            container = container[p]
        except (KeyError, IndexError, TypeError):
            return ABSENT
    return container


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[DiffItem, ...]:
    """Differences from ``old`` (live) to ``new`` (desired), sorted by path."""
    if old == new:
        return ()
    from deepdiff import DeepDiff  # imported on the first real difference: a no-change run skips it

    tree = DeepDiff(
        dict(old),
        dict(new),
        view="tree",
        ignore_numeric_type_changes=True,
        threshold_to_diff_deeper=0,
    )
    items: dict[str, DiffItem] = {}
    for levels in tree.values():
        for level in levels:
            parts = level.path(output_format="list")
            # collapse to the outermost list on the path: lists are shown whole
            for i, _ in enumerate(parts):
                if isinstance(_get(old, parts[:i]), list) or isinstance(_get(new, parts[:i]), list):
                    parts = parts[:i]
                    break
            o, n = _get(old, parts), _get(new, parts)
            op = ADD if o is ABSENT else REMOVE if n is ABSENT else CHANGE
            key = format_path(parts)
            items[key] = DiffItem(op, key, None if o is ABSENT else o, None if n is ABSENT else n)
    return tuple(items[k] for k in sorted(items))


def top_fields(items: tuple[DiffItem, ...]) -> set[str]:
    """The top-level fields a diff touches (what a merge-PUT must send)."""
    return {parse_path(i.path)[0] for i in items}


@dataclass(frozen=True)
class TextChange:
    lines: list[str]  # unified diff lines without headers
    placeholders_added: list[str]
    placeholders_removed: list[str]


def text_change(old: str, new: str) -> TextChange:
    lines = [
        ln
        for ln in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=1)
        if not ln.startswith(("---", "+++"))
    ]
    before = set(_PLACEHOLDER.findall(old))
    after = set(_PLACEHOLDER.findall(new))
    return TextChange(lines, sorted(after - before), sorted(before - after))
