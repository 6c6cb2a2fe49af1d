"""One view per command, the format chosen once: ``views.plan.view(output_format, style)``
returns the text, JSON or Markdown view of a plan, and the command calls its methods without
ever branching on the format (Terraform's ``internal/command/views``).

Modules: ``base`` (styling, escapes, the ``View`` class), ``validate``, ``plan``, ``apply``,
``drift``, ``export``, ``audit``, ``emulator``, ``comment``, ``rollout``, ``policy``,
``fleet``, and ``sarif`` (the SARIF log of a list of problems, which ``validate`` imports only
when asked for it). Views take the core's real result types and return text; they never print,
import click or do I/O (tests/test_architecture.py), so the CLI alone writes, through the
redactor (``reconciler.redact``). Importing this package stays cheap: the heavy result types
are imported for type checking only.
"""

from __future__ import annotations

from reconciler.views import (
    apply,
    audit,
    base,
    comment,
    drift,
    emulator,
    export,
    fleet,
    plan,
    policy,
    rollout,
    validate,
)

__all__ = [
    "apply",
    "audit",
    "base",
    "comment",
    "drift",
    "emulator",
    "export",
    "fleet",
    "plan",
    "policy",
    "rollout",
    "validate",
]
