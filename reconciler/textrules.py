"""The gateway's own rules for text, in one place: validation and the emulator both import them.

A manifest that validates must be accepted by the gateway, and one the gateway refuses must be
refused by validation naming the same rule; that holds only when both sides run the same code.
So this module owns:

- the **placeholder grammar**: ``{{name}}``, ``name`` being a letter or ``_`` then letters,
  digits or ``_``, with nothing else inside the braces (seed 000's expression). The gateway
  substitutes exactly that and sends everything else as written, so text that merely looks like
  a placeholder (``{{ x }}``, ``{{a-b}}``, ``{{user.name}}``, ``{{x}``, ``{{{x}}}``) is found here
  with what the gateway will do with it;
- the **injection patterns** of seed 002: the ones the gateway blocks when a template is defined
  (``DEFINITION``) and the ones it blocks in user input at run time (``RUNTIME``), matched on a
  normalised copy of the text (compatibility decomposition, combining marks, format characters
  such as zero-width spaces and bidi controls removed, common Cyrillic and Greek look-alikes of
  Latin letters folded), so ``ｉｇｎｏｒｅ previous instructions`` or ``ignore\\u200bprevious``
  are caught. The anchored "YOU ARE NOW AN AI" pattern is the gateway's own: it matches at the
  start of the text after any letters and spaces (and, stricter than the gateway, at the start
  of any line);
- **semver** exactly as semver.org 2.0.0 gives it (the schemas carry the same string);
- **identity characters**: names and every value that becomes part of a URL path refuse
  controls, format characters, whitespace, ``/ ? # \\`` and ``..``;
- the gateway's **limits** on text (a version's 4,096 bytes and 3,800 estimated tokens, a system
  prompt's 8,000 characters, the estimate of characters / 4) and the tolerance of a traffic
  split's weights, with the rule ids both sides name them by.

Every finding carries a stable rule id (``placeholder.undeclared``, ``injection`` ...), which
validation puts in its ``Problem.rule`` and the emulator in its error details. Pure: no I/O,
no third-party imports, no knowledge of manifests or of HTTP.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

# -- rule ids ------------------------------------------------------------------------------------
PLACEHOLDER_UNDECLARED = "placeholder.undeclared"
PLACEHOLDER_UNUSED = "placeholder.unused"
PLACEHOLDER_LOOKALIKE = "placeholder.lookalike"
INJECTION = "injection"
IDENTITY = "identity.characters"
CONTENT_SIZE = "content.size"
CONTENT_TOKENS = "content.tokens"
PROMPT_LENGTH = "prompt.length"
PROMPT_TOKENS = "prompt.tokens"
SPLIT_WEIGHTS = "split.weights"

# -- the gateway's limits --------------------------------------------------------------------------
VERSION_MAX_BYTES = 4096  # seed 000: Go's len() of the content
VERSION_MAX_TOKENS = 3800  # seed 000, by the estimate below
PROMPT_MAX_CHARS = 8000  # seed 001
WEIGHT_TOLERANCE = 0.01  # seed 003: split weights sum to 1.0 within this


def estimate_tokens(text: str) -> float:
    """The gateway's coarse token estimate: characters / 4 (seeds 000 and 003)."""
    return len(text) / 4


def detail(rule: str, message: str) -> str:
    """An error detail as the emulator writes it: ``rule: message``."""
    return f"{rule}: {message}"


def detail_rule(text: str) -> str:
    """The rule id of an error detail, or "" (``detail``'s inverse)."""
    head, sep, _ = text.partition(": ")
    return head if sep and head.replace(".", "").replace("-", "").isalnum() else ""


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a text: the rule, a sentence, and where (a character offset)."""

    rule: str
    message: str
    offset: int = 0
    fix: str = ""


# -- placeholders --------------------------------------------------------------------------------
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
PLACEHOLDER = re.compile(r"\{\{(" + NAME_PATTERN + r")\}\}")
_NAME = re.compile(NAME_PATTERN + r"\Z")
_OPEN = re.compile(r"\{\{+")
_HALF_OPEN = re.compile(r"(?<!\{)\{(" + NAME_PATTERN + r")\}\}")
_INSIDE_LIMIT = 100  # characters looked at after `{{` for the rest of a look-alike


def placeholders(text: str) -> dict[str, int]:
    """Each placeholder name the gateway substitutes in ``text``, with its first offset."""
    used: dict[str, int] = {}
    if "{{" not in text:
        return used
    for m in PLACEHOLDER.finditer(text):
        used.setdefault(m.group(1), m.start())
    return used


def lookalikes(text: str) -> list[Finding]:
    """Text that looks like a placeholder but is not exactly one, and what the gateway does."""
    if "{" not in text:
        return []
    out: list[Finding] = []
    for m in _OPEN.finditer(text):
        run, start = m.group(), m.start()
        end = m.end()
        k = end
        limit = min(len(text), end + _INSIDE_LIMIT)
        while k < limit and text[k] not in "{}\n":
            k += 1
        body = text[end:k]
        closes = 0
        while k + closes < len(text) and text[k + closes] == "}":
            closes += 1
        name_ok = bool(_NAME.match(body))
        shown = text[start : k + closes][:40]
        if len(run) == 2 and name_ok and closes == 2:
            continue  # a real placeholder
        if name_ok and closes >= 2:
            out.append(
                Finding(
                    PLACEHOLDER_LOOKALIKE,
                    f"`{shown}` has extra braces: the gateway replaces {{{{{body}}}}} and keeps "
                    "the other braces around the value",
                    start,
                    f"write {{{{{body}}}}}",
                )
            )
        elif closes >= 2 and _NAME.match(body.strip()):
            out.append(
                Finding(
                    PLACEHOLDER_LOOKALIKE,
                    f"`{shown}` is not a placeholder (no spaces inside the braces): the gateway "
                    "sends it to the model as written",
                    start,
                    f"write {{{{{body.strip()}}}}}",
                )
            )
        elif closes >= 2:
            what = "is empty" if not body.strip() else "is not a placeholder name"
            out.append(
                Finding(
                    PLACEHOLDER_LOOKALIKE,
                    f"`{shown}` {what} (letters, digits and _, not starting with a digit): the "
                    "gateway sends it to the model as written",
                    start,
                    "rename it, e.g. {{user_name}} for {{user.name}} or {{order_id}} for "
                    "{{order-id}}",
                )
            )
        else:
            out.append(
                Finding(
                    PLACEHOLDER_LOOKALIKE,
                    f"`{shown}` opens a placeholder that is not closed with }}}}: the gateway "
                    "sends it to the model as written",
                    start,
                    f"close it: {{{{{body.strip()}}}}}" if body.strip() else "close it with }}",
                )
            )
    for m in _HALF_OPEN.finditer(text):
        out.append(
            Finding(
                PLACEHOLDER_LOOKALIKE,
                f"`{m.group(0)}` lacks an opening brace: the gateway sends it to the model as "
                "written",
                m.start(),
                f"write {{{{{m.group(1)}}}}}",
            )
        )
    return sorted(out, key=lambda f: f.offset)


def placeholder_findings(
    text: str, declared: Iterable[str], *, field: str, container: str, unused: bool = True
) -> list[Finding]:
    """Placeholders of ``text`` against the declared names: undeclared ones (at their offset),
    and with ``unused`` the declared names no placeholder uses (offset -1: the caller places
    them at the declaration)."""
    names = set(declared)
    used = placeholders(text)
    out = [
        Finding(
            PLACEHOLDER_UNDECLARED,
            f"placeholder {{{{{name}}}}} is not declared in {container}",
            offset,
            f"add {name} to {container}",
        )
        for name, offset in used.items()
        if name not in names
    ]
    if unused:
        out += [
            Finding(
                PLACEHOLDER_UNUSED,
                f"variable {name!r} is not used in {field}",
                -1,
                f"remove it from {container} or use {{{{{name}}}}} in {field}",
            )
            for name in sorted(names - set(used))
        ]
    return out


# -- injection -----------------------------------------------------------------------------------
_F = re.IGNORECASE
DEFINITION: tuple[tuple[str, str], ...] = (  # seed 002: blocked when a template is defined
    ("ignore previous instructions", r"ignore\s+previous\s+instructions"),
    ("system prompt override", r"system\s+prompt\s+override"),
    ("begin secret mode", r"begin\s+secret\s+mode"),
    ("<|im_start|>", r"<\|im_start\|>"),
    ("<|im_end|>", r"<\|im_end\|>"),
    # the gateway's own anchor: the start of the text, after any letters and whitespace
    ("YOU ARE NOW AN AI at the start", r"\A[A-Za-z\s]*you\s+are\s+now\s+an\s+ai"),
)
RUNTIME: tuple[tuple[str, str], ...] = (  # seed 002: blocked in user input at run time
    ("execute system command", r"execute\s+system\s+command"),
    ("bypass security", r"bypass\s+security"),
    ("ignore rules", r"ignore\s+rules"),
    ("output only the following", r"output\s+only\s+the\s+following"),
    ("<|mask|>", r"<\|mask\|>"),
    ("<|reserved|>", r"<\|reserved\|>"),
)
# stricter than the gateway: the same phrase at the start of any line of a longer text
LINE_START: tuple[tuple[str, str], ...] = (
    ("YOU ARE NOW AN AI at the start of a line", r"(?m)^[A-Za-z \t]*you\s+are\s+now\s+an\s+ai"),
)


def _combine(patterns: Iterable[tuple[str, str]]) -> tuple[re.Pattern[str], list[str]]:
    labels = []
    parts = []
    for i, (label, rx) in enumerate(patterns):
        labels.append(label)
        flags = ""
        if rx.startswith("(?m)"):
            flags, rx = "m", rx[4:]
        parts.append(f"(?P<p{i}>{'(?' + flags + ':' + rx + ')' if flags else rx})")
    return re.compile("|".join(parts), _F), labels


_GATEWAY_RX, _GATEWAY_LABELS = _combine(DEFINITION)
_ALL_RX, _ALL_LABELS = _combine((*DEFINITION, *RUNTIME, *LINE_START))

# Latin look-alikes that survive NFKD: Cyrillic and Greek letters typed to dodge filters.
_CONFUSABLE = str.maketrans(
    "аАеЕоОрРсСуУхХіІјЈѕЅԁӏһВКМНТԛԝɡαΑεΕοΟρΡτΤυΥχΧκΚνΝιΙβΒμΜ",
    "aAeEoOpPcCyYxXiIjJsSdlhBKMHTqwgaAeEoOpPtTuYxXkKvNiIBBuM",
)
_DROP = frozenset({"Mn", "Me", "Cf"})


@lru_cache(maxsize=65536)
def _fold(ch: str) -> str:
    parts = unicodedata.normalize("NFKD", ch)
    kept = "".join(c for c in parts if unicodedata.category(c) not in _DROP)
    return kept.translate(_CONFUSABLE)


def normalise(text: str) -> tuple[str, list[int]]:
    """The text injection patterns are matched on, and for each of its characters the offset
    of the original character it came from. ASCII text is its own normal form."""
    if text.isascii():
        return text, []
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ch.isascii():
            out.append(ch)
            origin.append(i)
            continue
        folded = _fold(ch)
        out.append(folded)
        origin.extend([i] * len(folded))
    return "".join(out), origin


# every pattern holds one of these words: a text without any cannot match (most texts)
_KEYWORDS = ("ignore", "override", "secret", "<|", "you", "execute", "bypass", "output")


def _scan(text: str, rx: re.Pattern[str], labels: list[str]) -> Iterator[Finding]:
    norm, origin = normalise(text)
    low = norm.lower()
    if not any(k in low for k in _KEYWORDS):
        return
    for m in rx.finditer(norm):
        label = labels[int(str(m.lastgroup)[1:])]
        start = origin[m.start()] if origin else m.start()
        end = origin[m.end() - 1] + 1 if origin else m.end()
        matched = " ".join(text[start:end].split())
        how = (
            ""
            if matched.casefold() == " ".join(m.group(0).split()).casefold()
            else (f", written with look-alike or invisible characters as {matched[:60]!r}")
        )
        yield Finding(
            INJECTION,
            f"contains the prompt-injection pattern {label!r} (matched "
            f"{' '.join(m.group(0).split())[:60]!r}{how})",
            start,
            "remove or rephrase it: the gateway blocks these patterns",
        )


def injection_findings(text: str) -> list[Finding]:
    """Every blocked pattern in ``text`` (definition-time, run-time and line-start ones): what
    validation refuses in any text that reaches the model."""
    if not text:
        return []
    return list(_scan(text, _ALL_RX, _ALL_LABELS))


def gateway_injection(text: str) -> list[Finding]:
    """The patterns the gateway itself refuses when an object is written (seed 002's
    definition-time list): what the emulator refuses. A subset of ``injection_findings``."""
    if not text:
        return []
    return list(_scan(text, _GATEWAY_RX, _GATEWAY_LABELS))


# -- semver --------------------------------------------------------------------------------------
SEMVER_PATTERN = (
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
SEMVER_MAX = 64
SEMVER = re.compile(SEMVER_PATTERN[:-1] + r"\Z")  # `$` as ECMA-262 means it: no "\n" after


def is_semver(value: object) -> bool:
    return isinstance(value, str) and len(value) <= SEMVER_MAX and SEMVER.match(value) is not None


def semver_key(version: str) -> tuple[object, ...]:
    """Precedence order of semver.org section 11 (build metadata ignored); non-semver last."""
    m = SEMVER.match(version)
    if not m:
        return (1, version)
    pre = m.group(4)
    ids: tuple[object, ...] = ()
    if pre is not None:
        ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (0, int(m.group(1)), int(m.group(2)), int(m.group(3)), pre is None, ids)


# -- identity characters -------------------------------------------------------------------------
_FORBIDDEN_ASCII = frozenset("/?#\\")
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cs", "Cn"})


def describe_char(ch: str) -> str:
    """``the zero-width space U+200B``: a character as a message names it."""
    name = unicodedata.name(ch, "")
    if not name:
        name = {"\x00": "NUL", "\t": "TAB", "\n": "LINE FEED", "\r": "CARRIAGE RETURN"}.get(
            ch, "control character"
        )
    return f"{name.lower()} U+{ord(ch):04X}"


def identity_findings(value: str, *, what: str = "a name", ascii: bool = True) -> list[Finding]:
    """Why ``value`` cannot be an identity or a URL path segment: control and format characters
    (zero-width spaces, bidi overrides that make a name look like another), whitespace,
    ``/``, ``?``, ``#``, ``\\`` and ``..``. One finding per kind of problem. With
    ``ascii=False`` ASCII characters are not looked at (the JSON Schemas refuse those)."""
    out: list[Finding] = []
    for i, ch in enumerate("" if not ascii and value.isascii() else value):
        if not ascii and ch.isascii():
            continue
        if ch in _FORBIDDEN_ASCII or ch.isspace() or unicodedata.category(ch) in _BAD_CATEGORIES:
            shown = f"`{ch}`" if ch in _FORBIDDEN_ASCII else f"the {describe_char(ch)}"
            out.append(
                Finding(
                    IDENTITY,
                    f"contains {shown} at character {i + 1}: {what} becomes part of request "
                    "paths and must be plain visible text",
                    i,
                    "use letters, digits, '-', '_' and '.'",
                )
            )
            break
    if value in (".", ".."):
        out.append(
            Finding(
                IDENTITY,
                f"is `{value}`: {what} becomes a request path segment, where `{value}` means "
                f"{'this folder' if value == '.' else 'the parent'}",
                0,
                "use a name with letters or digits",
            )
        )
    elif ".." in value:
        out.append(
            Finding(
                IDENTITY,
                f"contains `..`: {what} becomes part of request paths, where `..` means the parent",
                value.index(".."),
                "use a single '.' or another separator",
            )
        )
    return out
