"""Domain values shared by every layer: manifest documents, their locations, and problems.

Pure data: no I/O, no third-party imports. A ``Document`` is one YAML document as loaded (the
plain body plus where each field came from); a ``Problem`` is one finding of validation or
planning, located at ``file:line`` with the field path and a fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.text import NAME, visible

API_VERSION = "llmgw/v1"
MANAGED_LABEL = "managed-by"
MANAGED_VALUE = "llmgw"
# labels llmgw keeps on live objects for its own state (a rollout's step): never diffed
STATE_LABEL_PREFIX = "llmgw.io/"
ALLOW_REPLACE_ANNOTATION = "llmgw/allow-replace"
# the name a manifest's object has in the org until llmgw renames it (a PromptTemplate, a Prompt)
RENAMED_FROM_ANNOTATION = "llmgw.io/renamed-from"

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """``('spec', 'versions', 0, 'weight')`` -> ``spec.versions[0].weight``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True, order=True)
class Problem:
    """One finding, sortable by place. ``severity`` is ``error`` or ``warning``."""

    file: str
    line: int
    severity: str
    kind: str
    name: str
    path: str
    message: str
    fix: str = ""
    rule: str = ""  # stable rule id shared with the emulator, e.g. placeholder.undeclared

    @property
    def subject(self) -> str:
        """``Kind/name`` for people: invisible characters escaped, a long name shortened."""
        name = visible(self.name, NAME)
        return f"{self.kind}/{name}" if self.kind else name

    def __str__(self) -> str:
        """One line: ``file:line: [warning: ]Kind/name: path: message (fix)``, with every
        control or format character escaped, so no value can break or disguise the line."""
        file = visible(self.file)
        where = f"{file}:{self.line}: " if self.line > 0 else f"{file}: " if file else ""
        subject = f"{self.subject}: " if self.subject else ""
        path = f"{visible(self.path, NAME * 2)}: " if self.path else ""
        level = "" if self.severity == "error" else f"{self.severity}: "
        fix = f" ({visible(self.fix)})" if self.fix else ""
        return f"{where}{level}{subject}{path}{visible(self.message)}{fix}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "kind": self.kind,
            "name": self.name,
            "path": self.path,
            "message": self.message,
            "fix": self.fix,
            "rule": self.rule,
        }


@dataclass
class Locations:
    """Where each part of a document came from (1-based lines).

    ``values`` maps a path to the line of its value, ``keys`` to the line of its key; ``raw``
    keeps the source text of scalars that YAML turned into something other than a string, so a
    message can say "YAML read 2.10 as the number 2.1; quote it". ``blocks`` holds, for block
    scalars (``|``, ``>``), the line of their first content line, so a placeholder deep in a
    multi-line text can be pointed at exactly. ``coerced`` holds the paths whose scalar the
    loader already reported as a YAML 1.1 reinterpretation, so later checks do not report the
    same value twice.
    """

    values: dict[Path, int] = field(default_factory=dict)
    keys: dict[Path, int] = field(default_factory=dict)
    raw: dict[Path, str] = field(default_factory=dict)
    blocks: dict[Path, tuple[int, str]] = field(default_factory=dict)
    coerced: set[Path] = field(default_factory=set)

    def line(self, path: Path, default: int = 1) -> int:
        """The line of the value at ``path``, else of its nearest ancestor."""
        p = tuple(path)
        while p:
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), default)

    def key_line(self, path: Path) -> int:
        return self.keys.get(tuple(path)) or self.line(path)

    def text_line(self, path: Path, offset: int) -> int:
        """The line of character ``offset`` inside the string at ``path``."""
        start = self.line(path)
        block = self.blocks.get(tuple(path))
        if block is None:
            return start
        first, text = block
        return first + text.count("\n", 0, offset)


@dataclass
class Document:
    """One manifest document as loaded: its body (plain YAML data) and its locations."""

    body: dict[str, Any]
    file: str
    line: int
    locations: Locations

    @property
    def kind(self) -> str:
        k = self.body.get("kind")
        return k if isinstance(k, str) else ""

    @property
    def metadata(self) -> dict[str, Any]:
        m = self.body.get("metadata")
        return m if isinstance(m, dict) else {}

    @property
    def name(self) -> str:
        n = self.metadata.get("name")
        return n if isinstance(n, str) else ("" if n is None else str(n))

    @property
    def spec(self) -> dict[str, Any]:
        s = self.body.get("spec")
        return s if isinstance(s, dict) else {}

    @property
    def labels(self) -> dict[str, Any]:
        lab = self.metadata.get("labels")
        return lab if isinstance(lab, dict) else {}

    @property
    def annotations(self) -> dict[str, Any]:
        a = self.metadata.get("annotations")
        return a if isinstance(a, dict) else {}

    def line_of(self, path: Path) -> int:
        return self.locations.line(path, self.line)

    def where(self) -> str:
        return f"{self.file}:{self.line}"
