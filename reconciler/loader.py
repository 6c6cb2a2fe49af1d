"""Reading manifest files: the only module that imports yaml.

PyYAML alone is too trusting for input that arrives in pull requests: it keeps the last of two
duplicate keys silently, expands alias bombs, builds 20,000 nested brackets, reads `0512` as the
octal number 330, `on` as true and `2026-12-31` as a date, honours `!!python/...` tags in the
unsafe loaders, and reads whatever a path leads to (a FIFO, `/dev/zero`). So this module finds
the files itself, reads only regular files and never more than the size bound, composes the node
graph with PyYAML, and builds the plain Python values itself, enforcing our bounds and recording,
for every value and key, the line it came from. It never raises for bad input: every refusal
becomes a ``Problem`` with file and line, and all problems of a run are collected. It does not
validate meaning (schemas and rules do that).

What it refuses, and the choices behind it:

- **Files.** Only regular files are read, opened without blocking (a FIFO never hangs) and
  checked on the open descriptor; at most ``MAX_FILE_BYTES + 1`` bytes are read whatever the
  file claims (a growing file or ``/proc`` cannot exceed the bound), ``MAX_TOTAL_BYTES`` over a
  run. Discovery follows symbolic links whose target stays inside the folders given and reports
  the others (outside, dangling, looping), never reading the target of a link it refuses. It
  finds at most ``MAX_FILES`` files.
- **Characters.** A character YAML forbids (controls but tab, LF, CR and NEL; U+FFFE, U+FFFF) is
  reported at its own line and column. Lines are the ones editors and GitHub show: counted by
  LF only, CRLF being one break. libyaml (YAML 1.1) also breaks lines at NEL, U+2028 and U+2029,
  which YAML 1.2, editors and GitHub treat as ordinary characters; it would shift every later
  line and even read ``a: x<U+2028>b: y`` as two keys. So when a text contains one of them, they
  are swapped for private-use characters absent from the text before parsing and swapped back
  in every string: the file is read as YAML 1.2 and GitHub show it, lines included, and
  ordinary files pay nothing. A carriage return without a line feed is refused: editors break
  lines there, GitHub does not, so the two would disagree on every line number after it.
- **Tags.** Every explicit tag is refused (`!Ref`, `!!binary`, `!!set`, `!!int "5"`, `! 5`, on a
  scalar, a sequence, a mapping or the document), except `!!str` on a scalar. The C composer
  does not keep whether a tag was written, so a scalar's tag is compared with the one the
  resolver gives its text and style, and a non-string plain scalar is looked at in the source
  (a tag there is written even when it repeats the default). On a mapping or sequence only a
  non-default tag is seen; `!!map`, `!!seq` and `!` change nothing there and pass.
- **YAML 1.1 readings.** A plain scalar that YAML 1.1 reads differently from YAML 1.2 or JSON is
  an error that says what it was read as and how to quote it: booleans other than
  true/false/True/TRUE/False/FALSE (`yes`, `off`), integers in octal (`0512`), binary, base 60
  (`1:20`), with underscores or a leading `+`, floats with underscores, base 60 or a leading
  `+`, dates and timestamps, and the reverse: numbers YAML 1.2 reads that YAML 1.1 reads
  as text (`1e-3`, `09`, `0o17`). For keys: any key read as a boolean, null or date, or as a
  number whose text differs from the source (`2.10:` would become "2.1"). NaN and infinities
  (`.nan`, `-.inf`, `1.0e+400`) are not finite numbers and are refused. Each reported path is
  added to ``Locations.coerced`` so later checks do not report it again; the value kept there
  is YAML 1.1's reading when that is a plain JSON value (a boolean, an integer, a finite float,
  a string) and the source text otherwise (dates, non-finite numbers, tagged values, numbers
  longer than ``MAX_NUMBER_CHARS``). Reported keys keep their source text. The ignore file reads
  dates as dates (``load_data_file(..., dates=True)``); everything else stays refused there.
- **Documents.** An explicit null document (`--- null`, `--- ~`) is reported; an empty one (a
  stray `---`) is harmless.

Messages quote values through ``text.shown`` (quoted, short, escaped). Between backticks stands
source text, shortened and escaped by ``text.visible``: a scalar YAML matched as a number,
boolean or date, or a tag.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import gc
import math
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.kinds import KINDS
from reconciler.model import Document, Locations, Path, Problem, format_path
from reconciler.text import NAME, SHOWN, shown, visible

LOAD_RULE = "load"  # every refusal of this module: the file could not be read as plain YAML
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_TOTAL_BYTES = 256 * 1024 * 1024  # over one run: some hundred thousand documents
MAX_FILES = 100_000
MAX_DEPTH = 64
MAX_ALIAS_NODES = 1000
MAX_NUMBER_CHARS = 100  # an int64 has 20 characters; Python refuses to parse 4,300 digits
MAX_CHARACTER_LINES = 20  # lines with forbidden characters reported one by one per file
MANIFEST_SUFFIXES = (".yaml", ".yml")  # in any case

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_constructor = yaml.SafeLoader("")  # only its scalar constructors and resolver are used

_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_NULL = _TAG + "null"
_BOOL = _TAG + "bool"
_INT = _TAG + "int"
_FLOAT = _TAG + "float"
_TIMESTAMP = _TAG + "timestamp"
_MERGE = _TAG + "merge"
_VALUE = _TAG + "value"  # YAML 1.1 reads a plain `=` as this; YAML 1.2 as the string "="
_MAP = _TAG + "map"
_SEQ = _TAG + "seq"
_TYPED = frozenset({_NULL, _BOOL, _INT, _FLOAT, _TIMESTAMP})
_CORE_BOOLS = dict.fromkeys(("true", "True", "TRUE"), True) | dict.fromkeys(
    ("false", "False", "FALSE"), False
)
_NUMBERISH = frozenset("0123456789.+-")
# A plain scalar YAML 1.1 leaves a string but YAML 1.2 (core schema) reads as a number.
_YAML12_NUMBER = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|0o[0-7]+")
# Integers YAML 1.1, YAML 1.2 and JSON (hex aside) read alike.
_PLAIN_INT = re.compile(r"-?(?:0|[1-9][0-9]*)|-?0x[0-9a-fA-F]+")
# Node properties in the source: a tag, or an anchor then a tag.
_WRITTEN_TAG = re.compile(r"(?:&[^\s,\[\]{}]+[ \t\r\n]+)?(![^\s,\[\]{}]*)")

# Characters YAML forbids in a stream (it allows #x9 #xA #xD #x20-#x7E #x85 #xA0-#xD7FF
# #xE000-#xFFFD #x10000-#x10FFFF; surrogates cannot survive UTF-8 decoding).
_FORBIDDEN = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FORBIDDEN_ASCII = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_LONE_CR = re.compile("\r(?!\n)")
_YAML11_BREAKS = "\x85\u2028\u2029"  # line breaks to libyaml, ordinary characters to YAML 1.2
# Names of the C0 and C1 control characters, as Unicode's charts give them.
_CONTROL_NAMES = (  # noqa: SIM905
    "NUL SOH STX ETX EOT ENQ ACK BEL BS HT LF VT FF CR SO SI DLE DC1 DC2 DC3 DC4 NAK SYN ETB CAN "
    "EM SUB ESC FS GS RS US"
).split()
_C1_NAMES = (  # noqa: SIM905
    "PAD HOP BPH NBH IND NEL SSA ESA HTS HTJ VTS PLD PLU RI SS2 SS3 DCS PU1 PU2 STS CCH MW SPA "
    "EPA SOS SGC SCI CSI ST OSC PM APC"
).split()

_TAG_FIX = "remove the tag; manifests use plain YAML values"


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


# --- discovery -----------------------------------------------------------------------------


def is_manifest_name(name: str) -> bool:
    """``x.yaml``, ``x.yml`` in any case, not a dot-file."""
    return not name.startswith(".") and name.lower().endswith(MANIFEST_SUFFIXES)


def discover(paths: Sequence[str]) -> tuple[list[str], list[Problem]]:
    """Manifest files under ``paths``: files as given (a symbolic link is followed), folders
    recursively (``*.yaml``, ``*.yml`` in any case), skipping names that start with a dot.

    Symbolic links inside a folder are followed when their target lies inside one of the
    folders given, and reported otherwise (outside, dangling, a loop); a file reached twice is
    listed once, under the path that needs no link when there is one. Deterministic: the files
    of each argument in order, each folder's entries sorted, then what links lead to."""
    return _Discovery().run(paths)


class _Discovery:
    def __init__(self) -> None:
        self.found: list[str] = []
        self.problems: list[Problem] = []
        self.real_files: set[str] = set()
        self.walked: set[str] = set()  # real paths of folders already listed
        self.roots: list[str] = []  # real paths of the folders given
        self.counts: list[int] = []  # files and problems found under each folder given
        # (link path, real path of the folder holding it, index of the folder given)
        self.links: collections.deque[tuple[str, str, int]] = collections.deque()
        self.queued: set[str] = set()  # real places of the links queued
        self.full = False

    def run(self, paths: Sequence[str]) -> tuple[list[str], list[Problem]]:
        given: list[tuple[str, int]] = []
        for raw in paths:
            if not raw:
                self.problems.append(
                    _problem('""', 0, "an empty path", "name a manifest file or folder")
                )
                continue
            try:
                st = os.stat(raw)
            except OSError as exc:
                self._missing(raw, exc, -1)
                continue
            if stat.S_ISDIR(st.st_mode):
                self.roots.append(os.path.realpath(raw))
                self.counts.append(0)
                index = len(self.roots) - 1
                given.append((raw, index))
                self._walk(raw, self.roots[index], index, set())
            else:
                # named explicitly: read whatever it is (the reader refuses non-regular files)
                self._add(raw, os.path.realpath(raw), -1)
        while self.links and not self.full:
            self._follow(*self.links.popleft(), given)
        for raw, index in given:
            if self.counts[index] == 0:
                self.problems.append(
                    _problem(
                        raw,
                        0,
                        "no manifest files (*.yaml, *.yml) in this folder",
                        "point llmgw at the folder that holds your manifests",
                    )
                )
        return self.found, self.problems

    def _report(self, path: str, index: int, message: str, fix: str) -> None:
        self.problems.append(_problem(path, 0, message, fix))
        if index >= 0:
            self.counts[index] += 1

    def _add(self, path: str, real: str, index: int) -> None:
        if index >= 0:
            self.counts[index] += 1  # a file found twice still counts for each folder given
        if self.full or real in self.real_files:
            return
        if len(self.found) >= MAX_FILES:
            self.full = True
            self.problems.append(
                _problem(
                    path,
                    0,
                    f"more than {MAX_FILES:,} manifest files: llmgw stopped looking here",
                    "point llmgw at the folder that holds your manifests",
                )
            )
            return
        self.real_files.add(real)
        self.found.append(path)

    def _walk(self, top: str, top_real: str, index: int, seen: set[str]) -> None:
        """List the folder tree at ``top`` (its real path ``top_real``) without following links:
        links are queued for ``_follow``, so a file is found under its own path first. ``seen``
        holds the folders not to list again: the run's for a link's target, a fresh set for a
        folder given (which may lie inside another one given)."""
        stack = [(top, top_real)]
        while stack and not self.full:
            path, real = stack.pop()
            if real in seen:
                continue
            seen.add(real)
            self.walked.add(real)
            try:
                with os.scandir(path) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self._report(
                    path, index, f"cannot be read: {exc.strerror}", "check the folder's permissions"
                )
                continue
            folders = []
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue
                try:
                    if entry.is_symlink():
                        place = os.path.join(real, name)
                        if place not in self.queued:
                            self.queued.add(place)
                            self.links.append((entry.path, real, index))
                        continue
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if is_dir:
                    folders.append((entry.path, os.path.join(real, name)))
                elif is_manifest_name(name):
                    self._add(entry.path, os.path.join(real, name), index)
            stack.extend(reversed(folders))

    def _follow(
        self, link: str, parent_real: str, index: int, given: list[tuple[str, int]]
    ) -> None:
        name = os.path.basename(link)
        try:
            target = os.path.realpath(link, strict=True)
            is_dir = os.path.isdir(target)
        except OSError as exc:
            self._missing(link, exc, index, name)
            return
        if not is_dir and not is_manifest_name(name):
            return  # not a manifest by its name: llmgw would not read it as a file either
        if not any(_inside(target, root) for root in self.roots):
            root = next(raw for raw, i in given if i == index)
            self._report(
                link,
                index,
                f"is a symbolic link that points outside {visible(root, NAME)}: "
                "llmgw reads only files inside the folders it is given",
                "copy what it points to into the folder, or give llmgw that folder too",
            )
        elif not is_dir:
            self._add(link, target, index)
        elif _inside(parent_real, target):
            self._report(
                link,
                index,
                "is a symbolic link to a folder that contains it: following it would loop",
                "remove the link",
            )
        elif target in self.walked:
            self.counts[index] += 1  # its files are listed already
        else:
            self._walk(link, target, index, self.walked)

    def _missing(self, path: str, exc: OSError, index: int, name: str | None = None) -> None:
        is_link = os.path.islink(path)
        if name is not None and not is_manifest_name(name) and os.path.splitext(name)[1]:
            return  # a broken link to, say, a README is not llmgw's business
        if is_link and exc.errno == errno.ELOOP:
            self._report(path, index, "is a symbolic link that loops", "fix or remove the link")
        elif is_link and exc.errno in (errno.ENOENT, errno.ENOTDIR):
            self._report(
                path,
                index,
                "is a broken symbolic link: what it points to does not exist",
                "fix or remove the link",
            )
        elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
            self._report(path, index, "no such file or folder", "check the path")
        else:
            self._report(path, index, f"cannot be read: {exc.strerror}", "check its permissions")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)


# --- reading -------------------------------------------------------------------------------


_FILE_TYPES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO opens at once instead of waiting for a writer
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def read_file(path: str, limit: int = MAX_FILE_BYTES) -> tuple[bytes | None, str, str]:
    """The bytes of the regular file at ``path``, or None with what is wrong and its fix.

    Reads at most ``limit + 1`` bytes, so a file larger than ``limit`` is known to be without
    reading it all, whatever its size claims."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket cannot be opened; name it
            try:
                return None, _not_regular(os.stat(path).st_mode), "llmgw reads only regular files"
            except OSError:
                pass
        return None, f"cannot be read: {exc.strerror}", ""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, _not_regular(st.st_mode), "llmgw reads only regular files"
        chunks: list[bytes] = []
        left = limit + 1
        want = min(left, max(st.st_size + 1, 1 << 16))
        while left > 0:
            chunk = os.read(fd, min(left, want))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
            want = 1 << 20
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}", ""
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) > limit:
        return None, f"file is larger than {_size(limit)}", "split it into several files"
    return data, "", ""


def _not_regular(mode: int) -> str:
    for test, word in _FILE_TYPES:
        if test(mode):
            return f"is {word}, not a regular file"
    return "is not a regular file"


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n:,} bytes"


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
    total = 0
    for f in files:
        shown_path = display_path(f, cwd)
        if total > MAX_TOTAL_BYTES:
            result.problems.append(
                _problem(
                    shown_path,
                    0,
                    f"the manifests read so far exceed {_size(MAX_TOTAL_BYTES)} together: "
                    "llmgw stopped reading here",
                    "validate the folders one at a time",
                )
            )
            break
        result.files.append(f)
        data, why, fix = read_file(f, MAX_FILE_BYTES)
        if data is None:
            line = 1 if why.startswith("file is larger") else 0
            result.problems.append(_problem(shown_path, line, why, fix))
            continue
        total += len(data)
        docs, probs = load_bytes(data, shown_path)
        result.documents.extend(docs)
        result.problems.extend(probs)
    return result


def load_bytes(data: bytes, file: str) -> tuple[list[Document], list[Problem]]:
    """Parse one file's bytes into documents (each a mapping) and load-time problems."""
    text, problem = _decode(data, file)
    if text is None:
        return [], [problem] if problem else []
    return load_text(text, file)


def _decode(data: bytes, file: str) -> tuple[str | None, Problem | None]:
    if len(data) > MAX_FILE_BYTES:
        return None, _problem(
            file, 1, f"file is larger than {_size(MAX_FILE_BYTES)}", "split it into several files"
        )
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return None, _problem(
            file,
            line,
            f"is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
            "save the file as UTF-8",
        )


def load_text(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    documents: list[Document] = []
    problems: list[Problem] = []
    for entry in parse_documents(text, file, problems):
        value, locations, line = entry
        if not isinstance(value, dict):
            if () in locations.coerced:
                continue  # the document's own tag was reported: once is enough
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


# --- parsing -------------------------------------------------------------------------------


def parse_documents(
    text: str, file: str, problems: list[Problem], *, dates: bool = False
) -> Iterable[tuple[Any, Locations, int]]:
    """Yield ``(value, locations, first_line)`` per YAML document of ``text``.

    Refusals are appended to ``problems``; after a syntax error the rest of the file is skipped
    (the parser cannot resynchronise), but the documents before it are kept. Empty documents
    are skipped; an explicit null document is reported. ``dates``: read dates and timestamps
    as ``datetime`` values instead of reporting them (the ignore file's expiry dates).
    """
    refused, breaks = _screen(text, file, problems)
    if refused:
        return
    back: dict[int, str] | None = None
    if breaks:
        text, back = _swap_breaks(text)
    if "\t" in text:
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
    nodes = _compose(text, file, problems, back)
    for node in nodes:
        if node is None:
            continue
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag == _NULL
            and not node.style
            and not _WRITTEN_TAG.match(text, node.start_mark.index)
        ):
            if node.value:
                problems.append(
                    _problem(
                        file,
                        node.start_mark.line + 1,
                        "the document is null",
                        "remove it or write the manifest",
                    )
                )
            continue  # an empty document (a stray `---`) is harmless
        builder = _Builder(file, text, back, dates)
        try:
            value = builder.build(node, (), 0)
        except _Refusal as r:
            problems.append(_problem(file, r.line, r.message, r.fix))
            continue
        problems.extend(builder.finish(value))
        yield value, builder.locations, node.start_mark.line + 1


def _compose(
    text: str, file: str, problems: list[Problem], back: dict[int, str] | None
) -> list[yaml.Node]:
    """The node graphs of the documents of ``text`` up to the first syntax error, reported."""
    nodes: list[yaml.Node] = []
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            nodes.append(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        last = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        line = min(mark.line + 1, last) if mark is not None else 1
        what = (exc.problem or "invalid YAML").strip()
        if back is not None:
            what = what.translate(back)
        if "\t" in what or "tab" in what:
            fix = "indent with spaces; YAML does not allow tabs there"
        else:
            fix = "fix the YAML syntax at this line"
        problems.append(_problem(file, line, f"YAML syntax error: {visible(what)}", fix))
    except yaml.YAMLError as exc:
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 1
        problems.append(_problem(file, line, f"YAML error: {visible(str(exc))}", "fix the YAML"))
    except RecursionError:
        problems.append(
            _problem(file, 1, f"nesting is deeper than {MAX_DEPTH} levels", "flatten the document")
        )
    return nodes


def _screen(text: str, file: str, problems: list[Problem]) -> tuple[bool, bool]:
    """Check the characters of ``text`` before YAML sees them: ``(refused, has_breaks)``.

    Refused: a character YAML forbids, or a carriage return without a line feed, each reported
    at its own line. ``has_breaks``: NEL, U+2028 or U+2029 occur (see ``_swap_breaks``). An
    ASCII text, the usual case, is screened with two scans in C."""
    if text.isascii():
        data = text.encode("ascii")
        forbidden = len(data.translate(None, _FORBIDDEN_ASCII)) != len(data)
        breaks = False
    else:
        forbidden = _FORBIDDEN.search(text) is not None
        breaks = any(ch in text for ch in _YAML11_BREAKS)
    lone_cr = "\r" in text and text.count("\r") != text.count("\r\n")
    if forbidden:
        _report_characters(text, file, problems)
    if lone_cr:
        count = text.count("\r") - text.count("\r\n")
        first = _LONE_CR.search(text)
        line = text.count("\n", 0, first.start() if first else 0) + 1
        more = f" (and {count - 1:,} more)" if count > 1 else ""
        problems.append(
            _problem(
                file,
                line,
                f"a carriage return without a line feed at line {line}{more}",
                "save the file with LF or CRLF line endings",
            )
        )
    return forbidden or lone_cr, breaks


def _report_characters(text: str, file: str, problems: list[Problem]) -> None:
    lines: set[int] = set()
    for m in _FORBIDDEN.finditer(text):
        start = m.start()
        line = text.count("\n", 0, start) + 1
        if line in lines:
            continue
        lines.add(line)
        if len(lines) > MAX_CHARACTER_LINES:
            continue
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        problems.append(
            _problem(
                file,
                line,
                f"contains {_character(m.group())} at column {column}",
                "delete it: YAML does not allow this character in a file",
            )
        )
    if len(lines) > MAX_CHARACTER_LINES:
        problems.append(
            _problem(
                file,
                sorted(lines)[MAX_CHARACTER_LINES],
                f"and {len(lines) - MAX_CHARACTER_LINES:,} more lines contain characters YAML "
                "does not allow",
                "delete them; is this a text file?",
            )
        )


def _character(ch: str) -> str:
    code = ord(ch)
    if code < 0x20:
        return f"the control character U+{code:04X} ({_CONTROL_NAMES[code]})"
    if code == 0x7F:
        return "the control character U+007F (DEL)"
    if 0x80 <= code <= 0x9F:
        return f"the control character U+{code:04X} ({_C1_NAMES[code - 0x80]})"
    return f"the noncharacter U+{code:04X}"


def _swap_breaks(text: str) -> tuple[str, dict[int, str]]:
    """``text`` with NEL, U+2028 and U+2029 replaced by private-use characters it does not
    contain (so libyaml sees no line break there, as YAML 1.2 would not), and the table that
    turns them back. One character for one: indexes and columns are unchanged."""
    there = [ch for ch in _YAML11_BREAKS if ch in text]
    stand_ins: list[str] = []
    code = 0xE000
    while len(stand_ins) < len(there):
        ch = chr(code)
        if ch not in text:
            stand_ins.append(ch)
        code += 1  # a 4 MiB file cannot hold all 6,400 private-use characters and the three
    forward = {ord(a): b for a, b in zip(there, stand_ins, strict=True)}
    back = {ord(b): a for a, b in zip(there, stand_ins, strict=True)}
    return text.translate(forward), back


class _Builder:
    """Builds plain values from one document's node graph, with bounds and locations."""

    def __init__(self, file: str, text: str, back: dict[int, str] | None, dates: bool) -> None:
        self.file = file
        self.text = text
        self.back = back
        self.dates = dates
        self.locations = Locations()
        self.problems: list[Problem] = []
        self.seen: set[int] = set()
        self.alias_nodes = 0

    def finish(self, value: Any) -> list[Problem]:
        """The problems found, each naming the document's kind and name when it has them."""
        if not self.problems or not isinstance(value, dict):
            return self.problems
        kind, metadata = value.get("kind"), value.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if kind not in KINDS or not isinstance(name, str):
            return self.problems
        return [dataclasses.replace(p, kind=kind, name=name) for p in self.problems]

    def report(self, path: Path, line: int, message: str, fix: str) -> None:
        self.locations.coerced.add(path)
        self.problems.append(
            Problem(self.file, line, "error", "", "", format_path(path), message, fix, LOAD_RULE)
        )

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
            if node.tag != _SEQ:
                self._tagged(node, path, line)
            return [
                self.build(item, (*path, i), depth + 1, via_alias)
                for i, item in enumerate(node.value)
            ]
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP:
                self._tagged(node, path, line)
            out: dict[str, Any] = {}
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if key_node.tag == _MERGE:
                    raise _Refusal(
                        key_line, "merge keys (<<) are not supported", "write the fields out"
                    )
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Refusal(
                        key_line, "a mapping key must be a plain scalar", "use a string key"
                    )
                key = self._key(key_node, path, key_line)
                if key in first_line:
                    self.problems.append(
                        Problem(
                            self.file,
                            key_line,
                            "error",
                            "",
                            "",
                            format_path((*path, key)),
                            f"duplicate key {shown(key)} (first at line {first_line[key]})",
                            "keep one of them: YAML parsers silently keep only the last",
                            LOAD_RULE,
                        )
                    )
                    continue
                first_line[key] = key_line
                child = (*path, key)
                self.locations.keys[child] = key_line
                out[key] = self.build(value_node, child, depth + 1, via_alias)
            return out
        raise _Refusal(line, "unsupported YAML node", "")

    def _tagged(self, node: yaml.Node, path: Path, line: int) -> None:
        m = _WRITTEN_TAG.match(self.text, node.start_mark.index)
        tag = m.group(1) if m else node.tag
        if tag.startswith(_TAG):
            tag = "!!" + tag[len(_TAG) :]
        tag = f"`{visible(tag, SHOWN)}`"
        if path:
            self.report(path, line, f"the YAML tag {tag} is not allowed", _TAG_FIX)
        else:
            self.report(path, line, f"the document has the YAML tag {tag}", _TAG_FIX)

    def _written_tag(self, node: yaml.ScalarNode) -> bool:
        """Whether the source writes a tag on this plain scalar (the composer does not say)."""
        return _WRITTEN_TAG.match(self.text, node.start_mark.index) is not None

    def _scalar(self, node: yaml.ScalarNode, path: Path, line: int) -> Any:
        tag = node.tag
        if tag == _STR:
            value: str = node.value
            if self.back is not None:
                value = value.translate(self.back)
            style = node.style
            if not style:
                if (
                    value
                    and value[0] in _NUMBERISH
                    and _YAML12_NUMBER.fullmatch(value)
                    and _constructor.resolve(yaml.ScalarNode, value, (True, False)) == _STR
                ):  # (not `!!str 5`, which means the text)
                    self._yaml12_number(value, path, line)
            elif style in ("|", ">"):
                self.locations.blocks[path] = (line + 1, value)
            return value
        if node.style or (tag not in _TYPED and tag not in (_MERGE, _VALUE)):
            self._tagged(node, path, line)  # `!!int "5"`, `!Ref x`: only a tag makes these
            return node.value if self.back is None else node.value.translate(self.back)
        if self._written_tag(node):
            self._tagged(node, path, line)  # `!!int 5`, `! 5`: the tag repeats the default
            return node.value
        if tag in (_MERGE, _VALUE):
            return node.value  # a plain `<<` or `=` as a value: YAML 1.2 reads the text
        self.locations.raw[path] = node.value
        return self._typed(node, path, line)

    def _typed(self, node: yaml.ScalarNode, path: Path, line: int) -> Any:
        raw: str = node.value
        tag = node.tag
        if tag == _NULL:
            return None
        if tag == _BOOL:
            core = _CORE_BOOLS.get(raw)
            if core is not None:
                return core
            value = bool(_constructor.construct_yaml_bool(node))
            word = "true" if value else "false"
            self.report(
                path,
                line,
                f"YAML 1.1 reads {_code(raw)} as the boolean {word}",
                f"write {word}, or quote it: {shown(raw)}",
            )
            return value
        if tag == _TIMESTAMP:
            if self.dates:
                try:
                    return _constructor.construct_yaml_timestamp(node)
                except ValueError:
                    self.report(
                        path, line, f"{_code(raw)} is not a valid date", "write it as YYYY-MM-DD"
                    )
                    return raw
            what = "a date" if len(raw) <= 10 else "a date and time"
            self.report(
                path, line, f"YAML 1.1 reads {_code(raw)} as {what}", f"quote it: {shown(raw)}"
            )
            return raw
        if len(raw) > MAX_NUMBER_CHARS:
            self.report(
                path,
                line,
                f"YAML reads {_code(raw)} ({len(raw):,} characters) as a number, "
                "longer than any field takes",
                "quote it if you mean the text",
            )
            return raw
        if tag == _INT:
            integer = _constructor.construct_yaml_int(node)
            if not _PLAIN_INT.fullmatch(raw):
                self.report(
                    path,
                    line,
                    f"YAML 1.1 reads {_code(raw)} as the {_int_word(raw)}number {integer}",
                    f"write {integer}, or quote it ({shown(raw)}) if you mean the text",
                )
            return integer
        number = _constructor.construct_yaml_float(node)
        if not math.isfinite(number):
            self._not_finite(raw, number, path, line)
            return raw
        if "_" in raw or ":" in raw or raw.startswith("+"):
            written = _float_text(number)
            word = "base-60 number" if ":" in raw else "number"
            self.report(
                path,
                line,
                f"YAML 1.1 reads {_code(raw)} as the {word} {written}",
                f"write {written}, or quote it ({shown(raw)}) if you mean the text",
            )
        return number

    def _not_finite(self, raw: str, number: float, path: Path, line: int) -> None:
        what = "NaN (not a number)" if math.isnan(number) else "infinity"
        if number < 0:
            what = "minus infinity"
        self.report(
            path,
            line,
            f"is not a finite number: YAML reads {_code(raw)} as {what}",
            f"write a finite number, or quote it ({shown(raw)}) if you mean the text",
        )

    def _yaml12_number(self, raw: str, path: Path, line: int) -> None:
        """``raw`` is a string to YAML 1.1 but a number to YAML 1.2: say so."""
        if len(raw) > MAX_NUMBER_CHARS:
            self.report(
                path,
                line,
                f"YAML 1.1 reads {_code(raw)} as text, YAML 1.2 as a number",
                f"quote it ({shown(raw)}) if you mean the text",
            )
            return
        number: float | int
        if raw.startswith("0o"):
            number = int(raw[2:], 8)
        elif any(c in raw for c in ".eE"):
            number = float(raw)
            if not math.isfinite(number):
                self._not_finite(raw, number, path, line)
                return
        else:
            number = int(raw)
        written = _float_text(number) if isinstance(number, float) else str(number)
        self.report(
            path,
            line,
            f"YAML 1.1 reads {_code(raw)} as text, YAML 1.2 as the number {written}",
            f"write {written} if you mean the number, or quote it ({shown(raw)}) if you mean "
            "the text",
        )

    def _key(self, node: yaml.ScalarNode, path: Path, line: int) -> str:
        tag = node.tag
        raw: str = node.value
        if self.back is not None:
            raw = raw.translate(self.back)
        if tag == _STR:
            return raw
        if tag == _VALUE:
            return raw  # `=`: YAML 1.2 reads the text
        child = (*path, raw)
        if node.style or tag not in _TYPED or self._written_tag(node):
            self._tagged(node, child, line)
            return raw
        read = self._key_reading(node)
        if read is None:
            return raw
        if raw == "":
            self.report(child, line, "an empty key is read as null", "write the key's name")
        else:
            self.report(
                child,
                line,
                f"{_code(raw)} as a key is read as {read}",
                f"quote it: {shown(raw)}",
            )
        return raw

    def _key_reading(self, node: yaml.ScalarNode) -> str | None:
        """What YAML reads this plain key as, when that is not its own text; else None."""
        tag, raw = node.tag, node.value
        if tag == _NULL:
            return "null"
        if tag == _TIMESTAMP:
            return "a date" if len(raw) <= 10 else "a date and time"
        if tag == _BOOL:
            return f"the boolean {'true' if _constructor.construct_yaml_bool(node) else 'false'}"
        if len(raw) > MAX_NUMBER_CHARS:
            return "a number"
        if tag == _INT:
            number: float | int = _constructor.construct_yaml_int(node)
            written = str(number)
        else:
            number = _constructor.construct_yaml_float(node)
            written = str(number)
            if not math.isfinite(number):
                return "a number that is not finite"
        return None if written == raw else f"the number {written}"


def _code(raw: str) -> str:
    return f"`{visible(raw, SHOWN)}`"


def _int_word(raw: str) -> str:
    digits = raw.lstrip("+-")
    if ":" in raw:
        return "base-60 "
    if digits.startswith("0b"):
        return "binary "
    if len(digits) > 1 and digits[0] == "0" and digits[1] != "x":
        return "octal "
    return ""


def _float_text(number: float) -> str:
    """``number`` as YAML 1.1 reads it back as the same float (``1.0e-05``, not ``1e-05``)."""
    text = repr(number)
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        if exponent[0] not in "+-":
            exponent = "+" + exponent
        text = f"{mantissa}e{exponent}"
    return text


def _type_word(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return type(value).__name__


def _problem(file: str, line: int, message: str, fix: str) -> Problem:
    return Problem(
        file=file,
        line=line,
        severity="error",
        kind="",
        name="",
        path="",
        message=message,
        fix=fix,
        rule=LOAD_RULE,
    )


_BREAKS_1_1 = frozenset("\x85\u2028\u2029")


def dump_yaml(data: Any) -> str:
    """Block-style YAML for files llmgw writes (export), keys in the given order."""

    class _Dumper(yaml.SafeDumper):
        pass

    def _str_rep(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        # PyYAML's emitter takes NEL, U+2028 and U+2029 for line breaks (YAML 1.1) and indents
        # after them, where llmgw's loader reads them as the characters they are (YAML 1.2):
        # only a double-quoted scalar, which escapes them (\N, \L, \P), reads back the same.
        style = '"' if _BREAKS_1_1.intersection(value) else "|" if "\n" in value else None
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


def load_data_file(
    path: str, shown: str | None = None, *, dates: bool = True
) -> tuple[Any, Locations, list[Problem]]:
    """One YAML document of a non-manifest file (the ignore file), with the same refusals,
    except that dates are read as dates unless ``dates`` is False."""
    shown = shown or display_path(path)
    problems: list[Problem] = []
    data, why, fix = read_file(path, MAX_FILE_BYTES)
    if data is None:
        line = 1 if why.startswith("file is larger") else 0
        return None, Locations(), [_problem(shown, line, why, fix)]
    text, problem = _decode(data, shown)
    if text is None:
        return None, Locations(), [problem] if problem else []
    docs = list(parse_documents(text, shown, problems, dates=dates))
    if not docs:
        return None, Locations(), problems
    value, locations, _ = docs[0]
    return value, locations, problems
