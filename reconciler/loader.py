"""Reading manifest files: the only module that imports yaml.

PyYAML alone is too trusting for input that arrives in pull requests: it keeps the last of two
duplicate keys silently, expands alias bombs, and its C composer builds 20,000 nested brackets
without complaint. So this module composes the node graph with PyYAML and then builds the plain
Python values itself, enforcing our bounds and recording, for every value and key, the line it
came from. It never raises for bad input: every refusal becomes a ``Problem`` with file and line.
It does not validate meaning (schemas and rules do that).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml

from reconciler.model import Document, Locations, Path, Problem

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_ALIAS_NODES = 1000
MANIFEST_SUFFIXES = (".yaml", ".yml")

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_constructor = yaml.SafeLoader("")  # only its scalar constructors are used

_STR = "tag:yaml.org,2002:str"
_SCALAR_BUILDERS = {
    "tag:yaml.org,2002:null": _constructor.construct_yaml_null,
    "tag:yaml.org,2002:bool": _constructor.construct_yaml_bool,
    "tag:yaml.org,2002:int": _constructor.construct_yaml_int,
    "tag:yaml.org,2002:float": _constructor.construct_yaml_float,
    "tag:yaml.org,2002:timestamp": _constructor.construct_yaml_timestamp,
}


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


class _Refusal(Exception):
    def __init__(self, line: int, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.fix = fix


def display_path(path: str | os.PathLike[str], cwd: str | None = None) -> str:
    """A path as users should read it: relative to the working directory when inside it."""
    p = os.path.abspath(path)
    base = os.path.abspath(cwd or os.getcwd())
    try:
        rel = os.path.relpath(p, base)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def discover(paths: Sequence[str]) -> tuple[list[str], list[Problem]]:
    """Manifest files under ``paths``: files as given, folders recursively (``*.yaml``, ``*.yml``),
    skipping names that start with a dot. Sorted, without duplicates."""
    found: list[str] = []
    problems: list[Problem] = []
    for raw in paths:
        p = FsPath(raw)
        if p.is_file():
            found.append(str(p))
        elif p.is_dir():
            before = len(found)
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and name.endswith(MANIFEST_SUFFIXES):
                        found.append(os.path.join(root, name))
            if len(found) == before:
                problems.append(
                    _problem(
                        raw,
                        0,
                        "no manifest files (*.yaml, *.yml) in this folder",
                        "point llmgw at the folder that holds your manifests",
                    )
                )
        else:
            problems.append(_problem(raw, 0, "no such file or folder", "check the path"))
    seen: set[str] = set()
    unique = []
    for f in found:
        key = os.path.abspath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems


def load_paths(paths: Sequence[str], cwd: str | None = None) -> LoadResult:
    """Load every manifest under ``paths``; problems of all files are collected, none raised."""
    # Parsing allocates a node graph per document and keeps what it builds: the cyclic collector
    # would scan that growing heap again and again for cycles parsing never makes (aliases are
    # bounded and expanded into fresh values). Off while parsing: at the default thresholds
    # that was more than half the load time of a 12,200-document org.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load_paths(paths, cwd)
    finally:
        if enabled:
            gc.enable()


def _load_paths(paths: Sequence[str], cwd: str | None) -> LoadResult:
    files, problems = discover(paths)
    result = LoadResult(problems=problems)
    for f in files:
        shown = display_path(f, cwd)
        result.files.append(f)
        try:
            data = FsPath(f).read_bytes() if os.path.getsize(f) <= MAX_FILE_BYTES else None
        except OSError as exc:
            result.problems.append(_problem(shown, 0, f"cannot be read: {exc.strerror}", ""))
            continue
        if data is None:
            result.problems.append(
                _problem(
                    shown,
                    1,
                    f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                    "split it into several files",
                )
            )
            continue
        docs, probs = load_bytes(data, shown)
        result.documents.extend(docs)
        result.problems.extend(probs)
    return result


def load_bytes(data: bytes, file: str) -> tuple[list[Document], list[Problem]]:
    """Parse one file's bytes into documents (each a mapping) and load-time problems."""
    if len(data) > MAX_FILE_BYTES:
        return [], [
            _problem(
                file,
                1,
                f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                "split it into several files",
            )
        ]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return [], [
            _problem(
                file,
                line,
                f"is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                "save the file as UTF-8",
            )
        ]
    return load_text(text, file)


def load_text(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    documents: list[Document] = []
    problems: list[Problem] = []
    for entry in parse_documents(text, file, problems):
        value, locations, line = entry
        if value is None:
            continue  # an empty document (a stray `---`) is harmless
        if not isinstance(value, dict):
            problems.append(
                _problem(
                    file,
                    line,
                    f"document is a {_type_word(value)}, not a mapping",
                    "each document must be a mapping with apiVersion, kind, metadata and spec",
                )
            )
            continue
        documents.append(Document(body=value, file=file, line=line, locations=locations))
    return documents, problems


def parse_documents(
    text: str, file: str, problems: list[Problem]
) -> Iterable[tuple[Any, Locations, int]]:
    """Yield ``(value, locations, first_line)`` per YAML document of ``text``.

    Refusals are appended to ``problems``; after a syntax error the rest of the file is skipped
    (the parser cannot resynchronise), but the documents before it are kept.
    """
    for lineno, source_line in enumerate(text.split("\n"), start=1):
        if source_line.startswith("\t") and source_line.strip():
            problems.append(
                _problem(
                    file,
                    lineno,
                    "a tab is used for indentation",
                    "indent with spaces; YAML does not allow tabs there",
                )
            )
            return
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        last = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        line = min(mark.line + 1, last) if mark is not None else 1
        what = (exc.problem or "invalid YAML").strip()
        if "\t" in what or "tab" in what:
            fix = "indent with spaces; YAML does not allow tabs there"
        else:
            fix = "fix the YAML syntax at this line"
        problems.append(_problem(file, line, f"YAML syntax error: {what}", fix))
        return
    except yaml.YAMLError as exc:
        problems.append(_problem(file, 1, f"YAML error: {exc}", "fix the YAML syntax"))
        return
    except RecursionError:
        problems.append(
            _problem(file, 1, f"nesting is deeper than {MAX_DEPTH} levels", "flatten the document")
        )
        return
    for node in nodes:
        if node is None:
            continue
        builder = _Builder(file)
        try:
            value = builder.build(node, (), 0)
        except _Refusal as r:
            problems.append(_problem(file, r.line, r.message, r.fix))
            continue
        problems.extend(builder.problems)
        yield value, builder.locations, node.start_mark.line + 1


class _Builder:
    """Builds plain values from one document's node graph, with bounds and locations."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.locations = Locations()
        self.problems: list[Problem] = []
        self.seen: set[int] = set()
        self.alias_nodes = 0

    def build(self, node: yaml.Node, path: Path, depth: int, via_alias: bool = False) -> Any:
        line = node.start_mark.line + 1
        if depth > MAX_DEPTH:
            raise _Refusal(
                line, f"nesting is deeper than {MAX_DEPTH} levels", "flatten the document"
            )
        if id(node) in self.seen and not isinstance(node, yaml.ScalarNode):
            via_alias = True
        self.seen.add(id(node))
        if via_alias:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise _Refusal(
                    line,
                    f"aliases expand to more than {MAX_ALIAS_NODES} values",
                    "write the values out instead of repeating anchors",
                )
        if path not in self.locations.values:
            self.locations.values[path] = line
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path, line)
        if isinstance(node, yaml.SequenceNode):
            return [
                self.build(item, (*path, i), depth + 1, via_alias)
                for i, item in enumerate(node.value)
            ]
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _Refusal(
                        key_line, "merge keys (<<) are not supported", "write the fields out"
                    )
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Refusal(
                        key_line, "a mapping key must be a plain scalar", "use a string key"
                    )
                key = key_node.value if key_node.tag == _STR else self._scalar(key_node, None, 0)
                key = key if isinstance(key, str) else str(key)
                if key in first_line:
                    self.problems.append(
                        _problem(
                            self.file,
                            key_line,
                            f"duplicate key {key!r} (first at line {first_line[key]})",
                            "keep one of them: YAML parsers silently keep only the last",
                        )
                    )
                    continue
                first_line[key] = key_line
                child = (*path, key)
                self.locations.keys[child] = key_line
                out[key] = self.build(value_node, child, depth + 1, via_alias)
            return out
        raise _Refusal(line, "unsupported YAML node", "")

    def _scalar(self, node: yaml.ScalarNode, path: Path | None, line: int) -> Any:
        if node.tag == _STR:
            if path is not None and node.style in ("|", ">"):
                self.locations.blocks[path] = (line + 1, node.value)
            return node.value
        builder = _SCALAR_BUILDERS.get(node.tag)
        if builder is None:
            raise _Refusal(
                node.start_mark.line + 1,
                f"unsupported YAML tag {node.tag}",
                "remove the tag; manifests use plain values",
            )
        value = builder(node)
        if path is not None:
            self.locations.raw[path] = node.value
        return value


def _type_word(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _problem(file: str, line: int, message: str, fix: str) -> Problem:
    return Problem(
        file=file, line=line, severity="error", kind="", name="", path="", message=message, fix=fix
    )


def dump_yaml(data: Any) -> str:
    """Block-style YAML for files llmgw writes (export), keys in the given order."""

    class _Dumper(yaml.SafeDumper):
        pass

    def _str_rep(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar(_STR, value, style=style)

    _Dumper.add_representer(str, _str_rep)
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )


def load_data_file(path: str, shown: str | None = None) -> tuple[Any, Locations, list[Problem]]:
    """One YAML document of a non-manifest file (the ignore file), with the same refusals."""
    shown = shown or display_path(path)
    problems: list[Problem] = []
    try:
        data = FsPath(path).read_bytes()
    except OSError as exc:
        return None, Locations(), [_problem(shown, 0, f"cannot be read: {exc.strerror}", "")]
    if len(data) > MAX_FILE_BYTES:
        return None, Locations(), [_problem(shown, 1, "file is too large", "")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return None, Locations(), [_problem(shown, line, "is not valid UTF-8", "save it as UTF-8")]
    docs = list(parse_documents(text, shown, problems))
    if not docs:
        return None, Locations(), problems
    value, locations, _ = docs[0]
    return value, locations, problems
