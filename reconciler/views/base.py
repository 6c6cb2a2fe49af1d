"""What every view shares: the styling function, plural words, the escapes for text, Markdown and
GitHub annotations, JSON for tools, and the ``View`` base class with its format registry.

A view turns a result into the text a command prints; it decides the wording and the format,
never whether or where anything is written. So views never print, never import click and do no
I/O (tests/test_architecture.py): the CLI picks a view once, from ``--output``, and echoes what
it returns through the redactor. Colour arrives as a ``Style`` function (``click.style`` on a
terminal, ``plain`` otherwise), so only the CLI knows whether stdout is a terminal.

Names, values and texts come from manifests and from the server, so none is shown raw: text
escapes control and format characters (``text.visible``: no terminal escape sequence or bidi
override gets through), Markdown escapes Markdown and HTML (``md_text``, ``md_code``, ``fence``:
a `|` in a name cannot split a table row, a backtick cannot end a code span early, a live
``<script>`` or an ``@team`` reaches a pull-request comment as inert text), and an annotation
escapes the workflow-command syntax (``gh_data``, ``gh_prop``: one problem stays one line).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from reconciler.text import json_dumps, plural, visible

__all__ = [
    "Style",
    "View",
    "choose",
    "fence",
    "gh_data",
    "gh_prop",
    "json_dumps",
    "md_code",
    "md_text",
    "plain",
    "plural",
    "registry",
    "short",
]

Style = Callable[..., str]


def plain(text: str, **_: Any) -> str:
    """The ``Style`` of an output that is not a terminal: the text, uncoloured."""
    return text


def short(value: Any, width: int = 80) -> str:
    """A field value on one line: JSON, invisible characters escaped, cut to ``width``."""
    text = visible(json.dumps(value, ensure_ascii=False, default=str))
    return text if len(text) <= width else text[: width - 3] + "..."


# -- Markdown --------------------------------------------------------------------------------------
# Inline Markdown syntax (table cells and paragraphs are inline: no line-start rules apply);
# < > & become HTML entities, and an @ that could start a mention becomes one too.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_MENTION = re.compile(r"(?<![\w.+-])@")


def md_text(text: str, limit: int | None = None) -> str:
    """``text`` as inert Markdown (a table cell or a paragraph): every Markdown and HTML special
    character escaped, invisible characters made visible, ``@`` mentions defused."""
    text = visible(text, limit)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _MENTION.sub("&#64;", html.escape(text, quote=False))


def md_code(text: str, limit: int | None = None, *, table: bool = False) -> str:
    """``text`` as an inline code span that no backtick inside can end early (a longer fence);
    in a table, ``|`` is escaped too (GitHub splits cells before it reads code spans)."""
    text = visible(text, limit)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    if table:
        text = text.replace("|", "\\|")
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fence(lines: Sequence[str]) -> str:
    """A code fence longer than any run of backticks in ``lines`` (so none closes it)."""
    longest = max((len(m) for ln in lines for m in re.findall(r"`{3,}", ln)), default=0)
    return "`" * max(3, longest + 1)


# -- GitHub Actions workflow commands --------------------------------------------------------------
def gh_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF escaped (one annotation, one line)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def gh_prop(text: str) -> str:
    """A workflow command's property value (a file, a title): ``:`` and ``,`` escaped too."""
    return visible(gh_data(text)).replace(":", "%3A").replace(",", "%2C")


# -- the view --------------------------------------------------------------------------------------
class View:
    """One command's output in one format. Subclasses per command declare the methods the
    command calls (``show`` and its companions); one subclass per format implements them.

    ``newline``: whether the CLI ends ``show``'s text with a line break. A document that
    carries its own (a Markdown comment, a saved plan) sets it to False."""

    format: ClassVar[str] = "text"
    newline: ClassVar[bool] = True

    def __init__(self, style: Style = plain, *, verbose: bool = False) -> None:
        self.style = style
        self.verbose = verbose


V = TypeVar("V", bound=View)


def registry(*classes: type[V]) -> dict[str, type[V]]:
    """A command's views by their ``format``, in the order ``--output`` lists them."""
    return {cls.format: cls for cls in classes}


def choose(
    views: Mapping[str, type[V]], output_format: str, style: Style, *, verbose: bool = False
) -> V:
    """The view of ``views`` for ``output_format``: the one place a format is looked up."""
    try:
        cls = views[output_format]
    except KeyError:
        raise ValueError(f"no {output_format!r} output here; one of {', '.join(views)}") from None
    return cls(style, verbose=verbose)
