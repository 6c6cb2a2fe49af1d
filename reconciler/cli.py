"""The command line: the only module that imports click.

Thin by design: it parses options, wires the core together, renders results and maps outcomes to
the exit codes of the contract (docs/cli in README): 0 ok, 1 expected failure, 2 changes/drift
(only where promised), 3 internal error (traceback written to a log file), 64 usage error, 130
interrupted. The core never prints and never exits.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

import click

from reconciler import __version__, output
from reconciler.errors import ConfigError, LlmgwError, ManifestError

EXIT_OK, EXIT_FAIL, EXIT_CHANGES, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 3, 64, 130

EXIT_CODES_HELP = """\b
Exit codes:
  0    success (valid / no changes / in sync / applied)
  1    expected failure (invalid manifests, refused or failed apply, API error)
  2    changes present (plan --detailed-exitcode) or drift found (drift)
  3    internal error (one line on stderr; traceback in the log file it names)
  64   usage error (unknown option, missing argument)
  130  interrupted
"""


def _secret_values() -> list[str]:
    s = os.environ.get("GENESYS_CLOUD_CLIENT_SECRET", "")
    return [s] if len(s) >= 4 else []


def redact(text: str) -> str:
    for s in _secret_values():
        text = text.replace(s, "***")
    return text


def _crash(exc: BaseException) -> int:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    fd, path = tempfile.mkstemp(prefix=f"llmgw-crash-{stamp}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"llmgw {__version__}, python {sys.version.split()[0]}\n")
        f.write(f"argv: {redact(' '.join(sys.argv))}\n\n")
        f.write(redact("".join(traceback.format_exception(exc))))
    msg = redact(f"{type(exc).__name__}: {exc}")[:300]
    click.echo(
        f"llmgw: internal error: {msg} (traceback written to {path}; please report it)", err=True
    )
    return EXIT_INTERNAL


class LlmgwGroup(click.Group):
    """Maps every outcome to the documented exit codes, in-process and under CliRunner alike."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(
                args, prog_name or "llmgw", complete_var, standalone_mode=False, **extra
            )
            code = rv if isinstance(rv, int) else EXIT_OK
        except click.UsageError as e:
            e.show()
            code = EXIT_USAGE
        except (click.Abort, KeyboardInterrupt):
            click.echo("llmgw: interrupted", err=True)
            code = EXIT_INTERRUPTED
        except click.ClickException as e:
            e.show()
            code = EXIT_FAIL
        except ManifestError as e:
            click.echo(redact("\n".join(str(p) for p in e.problems)), err=True)
            click.echo(f"llmgw: {e}", err=True)
            code = EXIT_FAIL
        except LlmgwError as e:
            click.echo(redact(f"llmgw: error: {e}"), err=True)
            code = EXIT_FAIL
        except Exception as e:  # a bug: one line, traceback to a log file
            code = _crash(e)
        if standalone_mode:
            sys.exit(code)
        return code


def _use_color(no_color: bool) -> bool:
    return not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


def _styler(no_color: bool) -> output.Style:
    return click.style if _use_color(no_color) else output.plain


def common_output(*formats: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--no-color", is_flag=True, help="Never colour the output.")(f)
        f = click.option(
            "-v", "--verbose", count=True, help="More detail (repeat for debug logs)."
        )(f)
        f = click.option(
            "--output",
            "-o",
            "output_format",
            type=click.Choice(formats),
            default="text",
            show_default=True,
            help="Output format.",
        )(f)
        return f

    return deco


@click.group(
    cls=LlmgwGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="llmgw")
def cli() -> None:
    """GitOps for the Genesys Cloud LLM Gateway: validate manifests, plan and apply changes,
    detect drift.

    \b
    Connection (environment only, never flags):
      GENESYS_CLOUD_REGION             a region domain such as usw2.pure.cloud, or
      GENESYS_CLOUD_API_URL            an explicit API URL (e.g. the emulator's), with
      GENESYS_CLOUD_LOGIN_URL          the login URL (defaults to the API URL on loopback)
      GENESYS_CLOUD_CLIENT_ID          OAuth client credentials
      GENESYS_CLOUD_CLIENT_SECRET      (never printed, logged or saved)
    """


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@common_output("text", "json", "markdown", "github")
def validate(
    paths: tuple[str, ...], strict: bool, output_format: str, verbose: int, no_color: bool
) -> int:
    """Check manifests offline: YAML, schemas and semantic rules. Sends nothing anywhere.

    PATHS are files or folders (read recursively: *.yaml, *.yml; dot-files are skipped).
    Exit 0 when valid, 1 when invalid (with --strict, warnings count too).
    """
    from reconciler.validate import validate_paths

    report = validate_paths(list(paths))
    ok = report.ok(strict)
    docs, files = len(report.documents), len(report.files)
    if output_format == "json":
        text = output.validation_json(report.problems, report.files, docs, ok)
    elif output_format == "markdown":
        text = output.validation_markdown(report.problems, files, docs, ok)
    elif output_format == "github":
        text = output.validation_github(report.problems)
    else:
        text = output.validation_text(report.problems, files, docs, _styler(no_color))
    click.echo(text)
    return EXIT_OK if ok else EXIT_FAIL


def main() -> None:
    cli.main()


__all__ = ["ConfigError", "cli", "main"]
