"""JSON Schema checks of manifest documents: the only module that imports jsonschema.

One schema per kind (draft 2020-12) ships inside the package, in ``reconciler/schemas/``, read
through ``importlib.resources`` so that a wheel-installed llmgw finds it wherever it lives; the
top-level ``schemas/`` that editors point at (``# yaml-language-server: $schema=``) is a link to
that one folder, never a second copy. This module turns jsonschema's errors into ``Problem``s a
reviewer understands: the line of the offending value (or key, or mapping), the field path, the
rule in words ("must be 3 to 128 characters"), and a fix. It also fills schema defaults, so the
rest of the code never repeats them.

Speed: most documents are valid, so each is first checked by jsonschema-rs (compiled, about 50
times faster here); only a document it rejects goes through jsonschema, whose errors carry what
the explanations need. jsonschema stays the judge, with JSON Schema's semantics rather than
Python's: patterns are ECMA-262 regular expressions (``$`` is the very end, not "before a final
newline"), NaN and the infinities are not numbers. A document is reported only if the judge finds
a problem; one the fast path refuses and the judge accepts is itself reported ("the two schema
checkers disagree"), never passed silently, and a test runs every corpus, example and generated
edge document through both to prove they agree. Without jsonschema-rs (a platform with no
wheel), every document takes the slow path.

It never prints, exits or reads anything but its own schemas.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from reconciler import kinds, textrules
from reconciler.defaults import fill_defaults, load_schema_file
from reconciler.kinds import KINDS
from reconciler.model import Document, Locations, Path, Problem, format_path
from reconciler.rollout import spec as rollout_spec
from reconciler.text import plural, shown, visible

if TYPE_CHECKING:  # imported when first needed: with the fast path, a valid run never needs it
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

_rs: Any
try:
    import jsonschema_rs as _rs
except ImportError:  # pragma: no cover - a platform without a wheel: the slow path alone
    _rs = None

# one JSON Schema per kind, as the registry names it (kinds/base.py: ``schema_file``)
SCHEMA_FILES = {r.kind: r.schema_file for r in kinds.REGISTRY}
# Every pattern of the schemas, spelled with explicit character classes: `.`, `\d`, `\w` and `\s`
# mean different things in Python, Rust (jsonschema-rs) and ECMA-262 (ajv, editors).
# An identity, or any value that becomes part of a request URL's path: no ASCII control
# character, no space, no `/`, `?`, `#` or `\` (the semantic rules add Unicode Cc/Cf/Z* and `..`).
IDENTITY = "^[^\\u0000-\\u0020\\u007F/?#%\\\\]+$"
# semver.org 2.0.0, exactly its recommended expression: the one textrules holds
SEMVER = textrules.SEMVER_PATTERN
VECTOR_STORE = "^[A-Za-z0-9._~-]+$"  # URL-unreserved characters (RFC 3986) only
LABEL_KEY = "^([a-z0-9]([a-z0-9.-]*[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
PLACEHOLDER = "^[a-zA-Z_][a-zA-Z0-9_]*$"
INDEX_ID = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# an A/B variant id travels in a header, `variant={variantId},traffic={p}`: a comma, a space or a
# character outside ASCII there would change or break the header
VARIANT_ID = "^[A-Za-z0-9._-]+$"
DURATION = rollout_spec.DURATION_PATTERN
# one DNS label: a policy pack's name and its rules' ids (they name exceptions:
# exceptions.llmgw.io/<id>), and a fleet environment's name (reconciler/fleet.py: it is a file
# name, a Kubernetes object name and a CI job name as it is); a variable is named, never given
DNS_LABEL = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
POLICY_ID = ENVIRONMENT_NAME = DNS_LABEL
VARIABLE_NAME = "^[A-Z_][A-Z0-9_]{0,127}$"
# What a value matching each pattern looks like, in words. The schemas carry no private keywords
# (a second implementation such as ajv in strict mode refuses unknown ones), so the phrase lives
# here; tests/test_schemas.py checks that every pattern has one.
PATTERN_WORDS = {
    VARIANT_ID: "must use only letters, digits, `.`, `_` and `-`, as it is sent in the "
    "X-Genesys-AB-Test header",
    IDENTITY: "must not contain spaces, control characters, `/`, `?`, `#`, `%` or `\\`, as it "
    "becomes part of request URLs",
    SEMVER: "must be a semver string such as 2.1.0",
    DURATION: "must be a duration such as 30m, 6h, 1h30m or 2d (days, hours, minutes, seconds)",
    DNS_LABEL: "must be lower-case letters, digits and `-`, at most 63 characters, starting and "
    "ending with a letter or digit, such as prod-low-temperature or prod-us (it names "
    "exceptions, result files, Kubernetes objects and CI jobs)",
    VECTOR_STORE: "must use only letters, digits, `.`, `_`, `~` and `-`, as it becomes part of "
    "request URLs",
    LABEL_KEY: "must be a label key such as `team` or `example.com/owner` (letters, digits, `-`, "
    "`_`, `.`; at most 63 characters)",
    PLACEHOLDER: "must be a placeholder name such as user_message (letters, digits, _)",
    INDEX_ID: "must be an index id such as prod-embedding-index-v2 (letters, digits, `.`, `_`, "
    "`-`; at most 128 characters)",
    VARIABLE_NAME: "must name an environment variable such as PROD_US_CLIENT_ID (upper-case "
    "letters, digits and `_`)",
}
# The upper bound of an integer field with no bound of its own: past 2**53 - 1, a JSON number
# loses precision in JavaScript and in any parser that reads numbers as doubles (RFC 7493, I-JSON).
JSON_MAX_INTEGER = 2**53 - 1
_CHAR_WORDS = {" ": "a space", "\t": "a tab", "\n": "a line break", "\r": "a carriage return"}


def _char_words(ch: str) -> str:
    if ch in _CHAR_WORDS:
        return _CHAR_WORDS[ch]
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"the control character U+{ord(ch):04X}"
    return shown(ch)


def _first_outside(text: str, allowed: Callable[[str], bool]) -> tuple[int, str] | None:
    return next(((i, ch) for i, ch in enumerate(text) if not allowed(ch)), None)


def _semver_detail(text: str) -> str:
    """Why ``text`` is not a semver.org 2.0.0 version, in a few words ("" when unsure)."""
    bad = _first_outside(text, lambda c: c.isascii() and (c.isalnum() or c in ".-+"))
    if bad is not None:
        return f"{_char_words(bad[1])} at character {bad[0] + 1}"
    if text[:1] in ("v", "V"):
        return "no `v` before the version"
    rest, plus, build = text.partition("+")
    core, dash, pre = rest.partition("-")
    numbers = core.split(".")
    if len(numbers) != 3 or not all(n.isdigit() for n in numbers):
        return "three numbers MAJOR.MINOR.PATCH first"
    if any(len(n) > 1 and n.startswith("0") for n in numbers):
        return "no leading zeros in MAJOR.MINOR.PATCH"
    for label, used, ids in (("pre-release", dash, pre), ("build", plus, build)):
        if not used:
            continue
        for ident in ids.split("."):
            if not ident:
                return f"an empty {label} identifier"
            if "+" in ident:
                return "one `+` at most"
            if label == "pre-release" and ident.isdigit() and len(ident) > 1 and ident[0] == "0":
                return f"the numeric pre-release identifier {ident} has a leading zero"
    return ""


def _pattern_problem(pattern: str, value: str, block: bool) -> tuple[str, str]:
    """The message and fix for ``value`` not matching ``pattern``; ``block`` when the value was
    written as a YAML block scalar (``|`` or ``>``)."""
    words = PATTERN_WORDS.get(pattern, "has an invalid format")
    got = f"got {shown(value)}"
    if pattern == IDENTITY:
        bad = _first_outside(value, lambda c: ord(c) > 0x20 and c not in "\x7f/?#%\\")
        if bad is None:
            return f"{words} ({got})", ""
        at, ch = bad
        if ch == "\n" and at == len(value) - 1 and block:
            fix = "a `|` or `>` block keeps its final line break: write the value on the key's line"
        elif ch == " ":
            fix = "use `-` instead of spaces"
        else:
            fix = "remove it"
        return f"{words} ({got}: {_char_words(ch)} at character {at + 1})", fix
    if pattern == VECTOR_STORE:
        bad = _first_outside(value, lambda c: c.isascii() and (c.isalnum() or c in "._~-"))
        if bad is not None:
            return f"{words} ({got}: {_char_words(bad[1])} at character {bad[0] + 1})", ""
    if pattern == SEMVER:
        detail = _semver_detail(value)
        fixed = value[1:] if detail.startswith("no `v`") else ""
        fix = f"write {shown(fixed)}" if fixed and ecma_regex(SEMVER).search(fixed) else ""
        return f"{words} ({got}{': ' + detail if detail else ''})", fix
    return f"{words} ({got})", ""


_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "empty",
}


def load_schema(kind: str) -> dict[str, Any]:
    """``kind``'s schema, parsed (shared: never edit it)."""
    return load_schema_file(SCHEMA_FILES[kind])


# ECMA-262 regular expressions, as JSON Schema specifies for `pattern`, written for Python's re.
# Python's `$` also matches before a final "\n", its `.` matches "\r" and U+2028, and its `\d`,
# `\w`, `\s` are Unicode-wide; ECMA's (without the m, s and u-class flags) are not.
_ECMA_SPACE = "\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_ECMA_OUTSIDE = {
    "$": "\\Z",
    ".": "[^\n\r\u2028\u2029]",
}
_ECMA_ESCAPES = {"s": f"[{_ECMA_SPACE}]", "S": f"[^{_ECMA_SPACE}]"}


@cache
def ecma_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled with ECMA-262's meaning: ``$`` only at the very end, ``.`` no line
    terminator, ``\\d``/``\\w``/``\\b`` ASCII (``re.ASCII``), ``\\s`` ECMA's white space.
    Raises ``re.error`` for a construct with no faithful translation (``\\S`` inside a class)."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt in _ECMA_ESCAPES:
                if in_class and nxt == "S":
                    raise re.error("\\S inside a character class", pattern, i)
                out.append(_ECMA_SPACE if in_class else _ECMA_ESCAPES[nxt])
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
            out.append(ch)
        elif ch == "[":
            negated = pattern.startswith("^", i + 1)  # a leading ^ negates; it is no member
            if pattern.startswith("]", i + 1 + negated):  # ECMA's [] matches nothing, [^] all
                out.append("[^\\x00-\\U0010ffff]" if not negated else "[\\x00-\\U0010ffff]")
                i += 2 + negated
                continue
            in_class = True
            out.append("[^" if negated else "[")
            i += negated
        else:
            out.append(_ECMA_OUTSIDE.get(ch, ch))
        i += 1
    return re.compile("".join(out), re.ASCII)


@cache
def _judge_class() -> type[Draft202012Validator]:
    """Draft 2020-12 as jsonschema implements it, with JSON's data model and ECMA-262 patterns:
    ``pattern`` matches as ECMA-262 does (the schemas use no ``patternProperties``, whose
    regexes jsonschema would still read as Python's; tests/test_schemas.py keeps it that way),
    and NaN and the infinities, which JSON cannot carry, are not numbers (jsonschema would let
    a NaN pass every range, as NaN compares false both ways; jsonschema-rs refuses them)."""
    from jsonschema import Draft202012Validator, validators
    from jsonschema.exceptions import ValidationError

    base = Draft202012Validator.TYPE_CHECKER

    def number(checker: Any, instance: Any) -> bool:
        return bool(base.is_type(instance, "number")) and math.isfinite(instance)

    def integer(checker: Any, instance: Any) -> bool:
        return bool(base.is_type(instance, "integer")) and math.isfinite(instance)

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
        if validator.is_type(instance, "string") and not ecma_regex(patrn).search(instance):
            yield ValidationError(f"{shown(instance)} does not match {shown(patrn)}")

    judge: type[Draft202012Validator] = validators.extend(
        Draft202012Validator,
        {"pattern": pattern},
        type_checker=base.redefine_many({"number": number, "integer": integer}),
    )
    return judge


@cache
def _validator(kind: str) -> Draft202012Validator:
    schema = load_schema(kind)
    judge = _judge_class()
    judge.check_schema(schema)
    for node in _patterns(schema):
        ecma_regex(node)  # a pattern with no faithful translation fails here, not per document
    return judge(schema)


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for v in node.values() for p in _patterns(v)]
    if isinstance(node, list):
        return [p for v in node for p in _patterns(v)]
    return []


@cache
def _fast_validator(kind: str) -> Any:
    """jsonschema-rs's compiled validator for ``kind``, or None when it is not installed. Formats
    are not asserted, as jsonschema does not assert them without a format checker."""
    if _rs is None:
        return None
    return _rs.validator_for(load_schema(kind), validate_formats=False)


def fast_verdict(kind: str, body: Any) -> bool | None:
    """The fast validator's verdict on ``body``: True valid, False invalid, None when it cannot
    judge (not installed, or a value it cannot convert)."""
    fast = _fast_validator(kind)
    if fast is None:
        return None
    try:
        return bool(fast.is_valid(body))
    except (ValueError, TypeError, OverflowError):
        return None


def is_valid_judged(kind: str, body: Any) -> bool:
    """True when the judge (jsonschema, ECMA patterns) accepts ``body``."""
    return next(iter(_validator(kind).iter_errors(body)), None) is None


def check_document(doc: Document) -> list[Problem]:
    """Schema problems of one document, each located and explained. A document the fast path
    refuses and the judge accepts is itself an error: the two checkers must agree. Nothing is
    reported at a path the loader already reported as a YAML 1.1 reinterpretation
    (``locations.coerced``): the value judged there is not the one the user wrote, and the
    loader's message ("quote it") already points at that line."""
    kind = doc.body.get("kind")
    if kind not in SCHEMA_FILES:
        return [_kind_problem(doc, kind)]
    verdict = fast_verdict(kind, doc.body)
    if verdict:
        return []
    errors = list(_validator(kind).iter_errors(doc.body))
    if not errors and verdict is False:
        return [_disagreement(doc)]
    problems: list[Problem] = []
    for error in errors:
        problems.extend(_explain(doc, error))
    if doc.locations.coerced:
        reported = {format_path(p) for p in doc.locations.coerced}
        problems = [p for p in problems if p.path not in reported]
    return problems


def _disagreement(doc: Document) -> Problem:
    message = (
        "the two schema checkers disagree: jsonschema-rs refuses this document and jsonschema "
        "accepts it: please report this"
    )
    fix = "attach this document to the report; llmgw treats it as invalid until they agree"
    return Problem(
        doc.file, doc.line, "error", doc.kind, doc.name, "", message, fix, "schema.disagreement"
    )


def _kind_problem(doc: Document, kind: Any) -> Problem:
    if kind is None:
        msg, line = "missing required field `kind`", doc.line
    else:
        msg = f"unknown kind {shown(kind)}"
        line = doc.locations.line(("kind",), doc.line)
    close = difflib.get_close_matches(str(kind or ""), KINDS, n=1)
    fix = f"did you mean {close[0]}?" if close else "use one of " + ", ".join(KINDS)
    return Problem(
        doc.file, line, "error", str(kind or ""), doc.name, "kind", msg, fix, "schema.kind"
    )


def _explain(doc: Document, error: ValidationError) -> list[Problem]:
    path: Path = tuple(error.absolute_path)
    loc = doc.locations
    kind, name = doc.kind, doc.name
    schema = error.schema if isinstance(error.schema, dict) else {}
    v = error.validator
    val: Any = error.validator_value
    inst: Any = error.instance

    rule = f"schema.{v}"  # the JSON Schema keyword refused: schema.required, schema.pattern ...

    def make(p: Path, line: int, message: str, fix: str = "") -> Problem:
        return Problem(doc.file, line, "error", kind, name, format_path(p), message, fix, rule)

    if v == "required":
        missing = [r for r in val if isinstance(inst, dict) and r not in inst]
        return [
            make(
                (*path, m),
                loc.key_line(path) if path else doc.line,
                f"missing required field `{m}`",
                f"add `{m}`",
            )
            for m in missing[:1] or val[:1]
        ]
    if v == "additionalProperties" and val is False and isinstance(inst, dict):
        allowed = sorted(schema.get("properties", {}))
        out = []
        for extra in sorted(k for k in inst if k not in schema.get("properties", {})):
            close = difflib.get_close_matches(extra, allowed, n=1)
            fix = (
                f"did you mean `{close[0]}`?"
                if close
                else (
                    "remove it; allowed fields: " + ", ".join(allowed) if allowed else "remove it"
                )
            )
            out.append(
                make(
                    (*path, extra),
                    loc.key_line((*path, extra)),
                    f"unknown field `{visible(extra, 80)}`",
                    fix,
                )
            )
        return out
    # A problem about a whole list or mapping points at its key (`versions:`), not its first item.
    line = (
        loc.key_line(path) if isinstance(inst, list | dict) and path else loc.line(path, doc.line)
    )
    if v == "anyOf" and all(isinstance(b, dict) and b.keys() == {"type"} for b in val):
        v, val = "type", [b["type"] for b in val]  # a union of types, written as ajv accepts it
    if v == "type":
        expected = val if isinstance(val, list) else [val]
        named = [_TYPE_WORDS.get(str(t), str(t)) for t in expected]
        words = ", ".join(named[:-1]) + " or " + named[-1] if len(named) > 1 else named[0]
        raw = loc.raw.get(path)
        if "string" in expected and raw is not None and not isinstance(inst, str):
            what = (
                "the boolean"
                if isinstance(inst, bool)
                else (
                    "empty"
                    if inst is None
                    else "the number"
                    if isinstance(inst, int | float)
                    else ""
                )
            )
            read = f"{what} {shown(inst)}" if inst is not None else "empty"
            return [
                make(
                    path,
                    line,
                    f"must be {words}, but YAML read `{raw}` as {read}",
                    f'quote it: "{raw}"',
                )
            ]
        return [make(path, line, f"must be {words} (got {shown(inst)})")]
    if v in ("enum", "const"):
        options = val if v == "enum" else [val]
        close = difflib.get_close_matches(str(inst), [str(o) for o in options], n=1)
        fix = f"did you mean {close[0]}?" if close else ""
        listed = ", ".join(str(o) for o in options)
        msg = f"must be {listed}" if v == "const" else f"must be one of: {listed}"
        return [make(path, line, f"{msg} (got {shown(inst)})", fix)]
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if xlo is not None or xhi is not None:
            parts = [
                f"above {xlo}" if xlo is not None else f"at least {lo}" if lo is not None else ""
            ]
            parts.append(
                f"below {xhi}" if xhi is not None else f"at most {hi}" if hi is not None else ""
            )
            msg = "must be " + " and ".join(p for p in parts if p)
        elif hi == JSON_MAX_INTEGER:  # no bound of its own: the largest a JSON API carries exactly
            msg = f"must be between {lo} and {hi} (2**53 - 1, the largest integer JSON carries)"
        elif lo is not None and hi is not None:
            msg = f"must be between {lo} and {hi}"
        elif lo is not None:
            msg = f"must be at least {lo}"
        else:
            msg = f"must be at most {hi}"
        return [make(path, line, f"{msg} (got {shown(inst)})")]
    if v in ("minLength", "maxLength"):
        lo, hi = schema.get("minLength"), schema.get("maxLength")
        n = len(inst) if isinstance(inst, str) else 0
        if lo == 1 and v == "minLength":
            return [make(path, line, "must not be empty")]
        if lo is not None and hi is not None:
            msg = f"must be {lo} to {hi} characters"
        elif lo is not None:
            msg = f"must be at least {lo} characters"
        else:
            msg = f"must be at most {hi} characters"
        return [make(path, line, f"{msg} (got {n})")]
    if v == "pattern":
        if error.relative_schema_path and "propertyNames" in error.relative_schema_path:
            msg = PATTERN_WORDS.get(str(val), "has an invalid format")
            return [
                make(
                    (*path, str(inst)),
                    loc.key_line((*path, str(inst))),
                    f"key {shown(inst)} {msg}",
                )
            ]
        msg, fix = _pattern_problem(str(val), str(inst), path in loc.blocks)
        return [make(path, line, msg, fix)]
    if v == "minItems":
        return [make(path, line, f"must list at least {plural(val, 'item')}")]
    if v == "uniqueItems" and isinstance(inst, list):
        seen: list[Any] = []
        dup = next((x for x in inst if x in seen or seen.append(x)), None)  # type: ignore[func-returns-value]
        return [make(path, line, f"lists {shown(dup)} more than once", "list each value once")]
    return [make(path, line, visible(error.message, 200))]


@cache
def _file_validator(file: str) -> Draft202012Validator:
    schema = load_schema_file(file)
    judge = _judge_class()
    judge.check_schema(schema)
    return judge(schema)


def check_file(schema_file: str, body: Any, locations: Locations, file: str) -> list[Problem]:
    """Problems of ``body``, a file that is not a manifest (the environments file), against the
    package's ``schema_file``: located and explained as a manifest's are, sorted by place."""
    doc = Document(body if isinstance(body, dict) else {}, file, 1, locations)
    return sorted(check_against(doc, schema_file, body))


def with_defaults(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with ``kind``'s schema defaults filled (``defaults.fill_defaults``)."""
    return fill_defaults(SCHEMA_FILES[kind], spec)


def check_against(doc: Document, file: str, body: Any = None) -> list[Problem]:
    """Problems of ``doc`` (or of ``body`` located by ``doc``) against one of the package's
    schemas that is not a manifest kind's (a policy pack's, the environments file's), located
    and explained as manifests' are."""
    judged = doc.body if body is None else body
    return [p for e in _file_validator(file).iter_errors(judged) for p in _explain(doc, e)]
