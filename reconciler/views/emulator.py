"""The view of ``llmgw emulator serve``: the banner once it listens (its URL, the OAuth clients
it accepts, the variable to export) and the hint (stderr) on how to stop it.

One format. Pure string building: no printing, no I/O, no click (``views.base``); it reads the
emulator's configuration, never the emulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.views.base import Style, View, choose, plain, registry

if TYPE_CHECKING:
    from reconciler.emulator.config import EmulatorConfig


class EmulatorView(View):
    format = "text"

    def listening(self, url: str, config: EmulatorConfig, *, given: bool) -> str:
        """The banner; ``given``: the clients came from ``--client``, so their secrets are the
        caller's and not repeated."""
        from reconciler.emulator.config import ALL_SCOPES

        lines = [f"llmgw emulator listening on {url}"]
        for c in config.clients:
            scopes = "all scopes" if c.scopes == ALL_SCOPES else ", ".join(sorted(c.scopes))
            shown = c.secret if not given else "(as given)"
            lines.append(f"  client {c.id} / {shown} ({scopes})")
        lines.append(f"  export GENESYS_CLOUD_API_URL={url}")
        return "\n".join(lines)

    def stop_hint(self) -> str:
        return "Press Ctrl+C to stop."


VIEWS = registry(EmulatorView)
FORMATS = tuple(VIEWS)


def view(output_format: str = "text", style: Style = plain) -> EmulatorView:
    return choose(VIEWS, output_format, style)
