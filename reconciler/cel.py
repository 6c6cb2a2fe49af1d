"""The one module that imports the CEL implementation (``common-expression-language``, the
Python binding of the Rust ``cel-interpreter`` crate).

Policy rules are CEL expressions. This module compiles and runs them, and turns every error the
library raises (``ValueError`` for syntax, ``KeyError``, ``TypeError``, ``RuntimeError``,
``OverflowError``, ``ZeroDivisionError`` for evaluation, or anything else it may raise) into
``ExpressionError`` with a sentence a rule's author can act on. Nothing else in llmgw knows
which library runs the expressions; the static checks (fields, types, cost) are llmgw's own
(``policy/check.py``), so swapping the library means rewriting this module only.

Why this library (measured in the commit that added it, 50 rules over 1,000 documents): 0.08 s
to evaluate against 7.1 s for the pure-Python ``cel-python`` with its interpreter and 1.4 s
with its compiled runner, which also failed on ``!has(spec.topP) || ...``, the commonest guard.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cel as _cel

from reconciler.errors import ExpressionError

_WHERE = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")
_TOKEN = re.compile(r"(?:mismatched|extraneous) input '(.*?)' expecting")


@dataclass(frozen=True)
class Program:
    """A compiled expression; ``source`` is what the author wrote."""

    source: str
    compiled: Any


def compile_expression(source: str) -> Program:
    """``source`` compiled, or ``ExpressionError`` with the library's syntax message (its first
    error, at its line and column)."""
    try:
        return Program(source, _cel.compile(source))
    except Exception as exc:  # the library raises ValueError; nothing it raises may leak
        raise _syntax_error(str(exc)) from None


def _syntax_error(text: str) -> ExpressionError:
    found = _WHERE.search(text)
    if found is None:
        return ExpressionError(_first_line(text) or "the expression cannot be parsed")
    line, column, message = int(found.group(1)), int(found.group(2)), found.group(3)
    message = message.removeprefix("Syntax error: ")
    # ANTLR's "mismatched input 'x' expecting {'[', '{', ... 15 more}": the token is the news
    token = _TOKEN.match(message)
    if token is not None:
        got = token.group(1)
        message = "the expression ends too early" if got == "<EOF>" else f"unexpected `{got}`"
    # the library's column is already 1-based: in 'abc def' the extraneous 'def' is at 1:5
    return ExpressionError(f"syntax error: {message}", column=max(column, 1), line=line)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else ""


def context(variables: dict[str, Any]) -> Any:
    """The library's context for ``variables`` (plain JSON-like data), built once per document
    and shared by every rule evaluated on it."""
    try:
        return _cel.Context(variables=variables)
    except Exception as exc:  # a value the library cannot convert
        why = _first_line(str(exc))
        raise ExpressionError(f"the document cannot be given to CEL: {why}") from None


def evaluate(program: Program, ctx: Any, fields: Sequence[Sequence[object]] = ()) -> Any:
    """The value of ``program`` in ``ctx`` (from ``context``), or ``ExpressionError`` saying
    why it could not be computed. ``fields``: the field paths the expression selects (such as
    ``('spec', 'fewShot', 'examples')``), so that a missing field's fix names its guard."""
    try:
        return program.compiled.execute(ctx)
    except KeyError as exc:
        name = str(exc.args[0]) if exc.args else "?"
        message = f"no such field `{name}` in this document"
        raise ExpressionError(message, fix=_guard(name, fields)) from None
    except Exception as exc:  # TypeError, RuntimeError, OverflowError, ZeroDivisionError ...
        raise ExpressionError(_first_line(str(exc)) or type(exc).__name__) from None


def _guard(name: str, fields: Sequence[Sequence[object]]) -> str:
    """The fix for a missing field ``name``: its ``has()`` guard, written out when ``fields``
    shows where it is selected, e.g. ``!has(spec.fewShot) || ...``."""
    for path in fields:
        if name in path[1:]:
            selected = ".".join(str(p) for p in path[: list(path).index(name, 1) + 1])
            return f"guard it with has(): `!has({selected}) || ...`"
    return f"guard it with has() for a field (`!has(x.{name}) || ...`), `in` for a map key"


def regex_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a regular expression ``matches`` accepts (RE2 syntax), or None."""
    try:
        _cel.evaluate("''.matches(p)", {"p": pattern})
    except Exception as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip().startswith("error:")]
        return lines[0].removeprefix("error: ") if lines else _first_line(str(exc))
    return None
