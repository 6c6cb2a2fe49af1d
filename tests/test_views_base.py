"""The shared pieces of reconciler/views/base.py, and each command's choice of view.

Covers: Markdown code spans survive backticks and `|` in a table, a fence outgrows any run of
backticks inside, inert Markdown text (HTML, mentions, Markdown syntax); the workflow-command
escapes; plural words and the uncoloured style; every command's ``view(format)`` returns the
view of that format (and only the formats its ``--output`` offers), an unknown format is a
ValueError naming the known ones.
"""

from __future__ import annotations

import click
import pytest

from reconciler import cli, views
from reconciler.views import base

COMMANDS = {
    "validate": views.validate,
    "plan": views.plan,
    "apply": views.apply,
    "drift": views.drift,
}


def test_md_code_survives_backticks() -> None:
    assert base.md_code("a`b") == "``a`b``"
    assert base.md_code("`x`") == "`` `x` ``"
    assert base.md_code("a|b", table=True) == "`a\\|b`"


def test_md_text_is_inert() -> None:
    assert base.md_text("<b>@team</b> a|b *x*") == r"&lt;b&gt;&#64;team&lt;/b&gt; a\|b \*x\*"
    assert base.md_text("mail me@example.org") == "mail me@example.org"  # not a mention
    assert base.md_text("\x1b[31m") == r"\\x1b\[31m"


def test_fence_is_longer_than_any_run_inside() -> None:
    assert base.fence(["plain"]) == "```"
    assert base.fence(["````", "``"]) == "`````"


def test_workflow_command_escapes() -> None:
    assert base.gh_data("50%\r\nnext") == "50%25%0D%0Anext"
    assert base.gh_prop("a:b,c\x1b") == "a%3Ab%2Cc\\x1b"


def test_plural_and_plain() -> None:
    assert [base.plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert base.plain("x", fg="red", bold=True) == "x"


def test_short_values_are_one_line() -> None:
    assert base.short("a\nb") == '"a\\nb"'
    assert base.short("x" * 100, 20) == '"' + "x" * 16 + "..."


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_format_has_its_view(command: str) -> None:
    module = COMMANDS[command]
    for fmt in module.FORMATS:
        chosen = module.view(fmt, base.plain)
        assert chosen.format == fmt and isinstance(chosen, base.View)
    with pytest.raises(ValueError, match="one of text"):
        module.view("yaml", base.plain)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_output_option_offers_exactly_the_views(command: str) -> None:
    params = cli.cli.commands[command].params
    option = next(p for p in params if p.name == "output_format")
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == COMMANDS[command].FORMATS


def test_single_format_views() -> None:
    for module in (views.export, views.audit, views.emulator):
        assert module.FORMATS == ("text",) and module.view().format == "text"


def test_style_and_verbosity_reach_the_view() -> None:
    chosen = views.plan.view("text", click.style, verbose=True)
    assert chosen.style is click.style and chosen.verbose
