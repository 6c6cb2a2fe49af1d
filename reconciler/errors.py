"""The one exception tree of llmgw.

Every failure the tool expects is one of these; anything else is a bug (exit 3). Facts are
attributes, the sentence is built in ``__str__``, so renderers can also emit them as JSON.
No message ever contains a credential or a bearer token: the client redacts before raising.

    LlmgwError
    ├── ConfigError                 environment, credentials, URLs (e.g. http:// to a remote host)
    ├── ManifestError               manifests failed validation; carries every Problem of the run
    │   └── EnvironmentsError       a fleet's environments file is invalid (every Problem of it)
    ├── ExpressionError             a policy's CEL expression cannot be compiled or evaluated
    ├── PlanError                   a plan cannot be made (immutable change, live reference missing)
    ├── StalePlanError              a saved or fresh plan no longer matches the live org
    ├── PlanMismatchError           a saved plan differs from what its manifests and the org give
    ├── InvariantError              a plan breaks a rule the executor enforces whatever it says
    ├── ApplyError                  apply stopped; carries the run summary
    ├── DeadlineError               the run did not finish within --timeout
    ├── FileError                   a file llmgw writes (saved plan, metrics) cannot be written
    ├── AuditError                  an audit log cannot be read or appended
    ├── RunStopped                  a stopped run did not send a request it was about to send
    │   └── LockError               another run holds the audit log's lock
    └── RemoteError                 anything the gateway answered or failed to answer
        ├── TransportError          connection refused/dropped, timeout, after retries
        ├── ProtocolError           an answer llmgw cannot read (shape, size, paging, redirect)
        ├── AuthError               401, or the token endpoint refused the client
        ├── ScopeError              403 missing.scope (names the scope)
        ├── NotFoundError           404
        ├── RateLimitError          429 still answered after every retry
        ├── ServerError             5xx still answered after every retry
        ├── InvalidRequestError     400/422 validation.failed, immutable.field
        ├── PreconditionFailedError 412, or 409 precondition.failed (a stale precondition)
        └── ConflictError           409 name.exists, version.exists, template.bound, ...
            └── ProcessingError     409 index.processing (wait, then retry)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler.text import plural

if TYPE_CHECKING:
    from reconciler.model import Problem


class LlmgwError(Exception):
    """Base of every error llmgw expects. The CLI maps these to exit code 1."""


class ConfigError(LlmgwError):
    """The environment or options do not describe a usable target."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


class ManifestError(LlmgwError):
    """Validation found errors; ``problems`` holds all of them (and the warnings) sorted."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__()
        self.problems = list(problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def __str__(self) -> str:
        n = len(self.errors)
        return f"{plural(n, 'error')} in the manifests"


class ExpressionError(LlmgwError):
    """A CEL expression of a policy rule did not compile or could not be evaluated on a
    document. ``column`` (1-based, 0 unknown) points into the expression's text; the policy
    loader turns it into a located ``Problem``."""

    def __init__(self, message: str, *, fix: str = "", column: int = 0, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.column = column
        self.line = line

    def __str__(self) -> str:
        where = f"column {self.column}: " if self.column else ""
        return f"{where}{self.message}"


class EnvironmentsError(ManifestError):
    """The environments file of ``llmgw fleet`` is missing or invalid; ``problems`` holds every
    one of its problems (a ManifestError, so the CLI prints them the same way)."""

    def __init__(self, problems: Sequence[Problem], file: str) -> None:
        super().__init__(problems)
        self.file = file

    def __str__(self) -> str:
        return f"{plural(len(self.errors), 'error')} in the environments file {self.file}"


class PlanError(LlmgwError):
    """The desired state cannot be reached from the live state by any plan."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__()
        self.problems = list(problems)

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.problems)


class StalePlanError(LlmgwError):
    """The plan was made against a state that has since moved: re-plan."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__()
        self.reasons = list(reasons)

    def __str__(self) -> str:
        lines = "\n".join(f"  - {r}" for r in self.reasons)
        return (
            f"the plan is stale, nothing was written:\n{lines}\n"
            "re-run `llmgw plan` and review it again"
        )


class ApplyError(LlmgwError):
    """Apply stopped before completing; ``summary`` says what was and was not done."""

    def __init__(self, message: str, summary: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.summary = summary

    def __str__(self) -> str:
        return self.message


class PlanMismatchError(LlmgwError):
    """A saved plan's operations are not what its recorded manifests and the live org give:
    the file was edited, or was written by another llmgw. ``differences`` name the first few."""

    def __init__(self, differences: Sequence[str], more: int = 0, tool: str | None = None) -> None:
        super().__init__()
        self.differences = list(differences)
        self.more = more
        self.tool = tool

    def __str__(self) -> str:
        lines = "\n".join(f"  - {d}" for d in self.differences)
        if self.more:
            lines += f"\n  - ... and {plural(self.more, 'more difference')}"
        made_by = f" (it was written by {self.tool})" if self.tool else ""
        return (
            "the saved plan is not what its manifests and the org give, nothing was written:\n"
            f"{lines}\n"
            f"the plan file was edited, or llmgw changed{made_by}; re-run `llmgw plan` and "
            "review it again"
        )


class InvariantError(LlmgwError):
    """A plan asks for something the executor never does, whatever the plan says: a delete of an
    object without the management label, a delete without --prune, a replacement without
    permission, a request to a path or with a method its operation does not use."""

    def __init__(self, violations: Sequence[str]) -> None:
        super().__init__()
        self.violations = list(violations)

    def __str__(self) -> str:
        lines = "\n".join(f"  - {v}" for v in self.violations)
        return f"apply refused, nothing was sent:\n{lines}"


class DeadlineError(LlmgwError):
    """The run did not finish within its deadline (``--timeout``)."""

    def __init__(self, command: str, limit: str, doing: str = "") -> None:
        super().__init__()
        self.command = command
        self.limit = limit
        self.doing = doing

    def __str__(self) -> str:
        doing = f" while {self.doing}" if self.doing else ""
        return (
            f"{self.command} did not finish within --timeout {self.limit}{doing}, and stopped "
            "(nothing was written); pass a longer --timeout, or check the gateway's latency "
            "and rate limit (-vv shows each phase)"
        )


class FileError(LlmgwError):
    """A file the run must write (a saved plan, a metrics file) cannot be written."""

    def __init__(self, path: str, reason: str, fix: str = "choose another path") -> None:
        super().__init__()
        self.path = path
        self.reason = reason
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.path}: {self.reason} ({self.fix})"


class AuditError(LlmgwError):
    """An audit log is unreadable or cannot be appended to."""


class LockError(AuditError):
    """Another run holds the audit log's lock; ``holder`` says who, as its lock file records."""

    def __init__(self, path: str, holder: str, waited: str) -> None:
        super().__init__()
        self.path = path
        self.holder = holder
        self.waited = waited

    def __str__(self) -> str:
        return (
            f"{self.path} is locked by another apply ({self.holder}); waited {self.waited}. "
            "Two applies never share an audit log: wait for that one to finish, or pass a "
            "longer --lock-timeout"
        )


class RunStopped(LlmgwError):
    """The run was stopped (a signal, the run deadline, an audit failure) while this request
    waited for its turn: it was not sent."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__()
        self.method, self.path = method, path

    def __str__(self) -> str:
        return f"{self.method} {self.path} was not sent: the run was stopped"


class RemoteError(LlmgwError):
    """The gateway answered with an error, or could not be reached.

    ``status`` is the HTTP status (None for transport failures), ``code`` the contract's error
    code, ``detail`` the server's message trimmed to a few hundred characters.
    """

    def __init__(
        self,
        method: str,
        path: str,
        status: int | None = None,
        code: str | None = None,
        detail: str = "",
        correlation_id: str | None = None,
    ) -> None:
        super().__init__()
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.detail = detail
        self.correlation_id = correlation_id

    def __str__(self) -> str:
        head = f"{self.method} {self.path}"
        if self.status is not None:
            head += f" -> {self.status}"
        if self.code:
            head += f" {self.code}"
        text = f"{head}: {self.detail}" if self.detail else head
        if self.correlation_id:
            text += f" [correlation id {self.correlation_id}]"
        return text


class TransportError(RemoteError):
    """No usable answer: connection refused or dropped, or a timeout, after every retry."""


class ProtocolError(RemoteError):
    """The server answered something llmgw cannot read: a body of the wrong shape, too large
    or too deeply nested, paging that contradicts itself, a redirect, an undocumented status.
    Never retried: the same question would get the same answer."""

    def __str__(self) -> str:
        where = f"{self.method} {self.path}"
        if self.status is not None:
            where += f" -> {self.status}"
        return f"the server answered something llmgw cannot read: {where}: {self.detail}"


class AuthError(RemoteError):
    """Authentication failed (401, or the token endpoint refused the credentials)."""


class ScopeError(RemoteError):
    """403: the OAuth client lacks a scope; ``scope`` names it when the server said which."""

    def __init__(self, *args: Any, scope: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scope = scope

    def __str__(self) -> str:
        base = super().__str__()
        if self.scope:
            return f"{base} (grant the OAuth client the scope {self.scope})"
        return base


class NotFoundError(RemoteError):
    """404: the object or endpoint does not exist."""


class RateLimitError(RemoteError):
    """429 still answered after every retry."""


class ServerError(RemoteError):
    """5xx still answered after every retry."""


class InvalidRequestError(RemoteError):
    """400 or 422: the server refused the body (validation.failed, immutable.field)."""


class PreconditionFailedError(RemoteError):
    """412 (or 409 for indexes) precondition.failed: the object moved since it was read."""


class ConflictError(RemoteError):
    """409: name.exists, version.exists, template.bound, version.routed, version.withdrawn."""


class ProcessingError(ConflictError):
    """409 index.processing: the index is still ingesting; wait for ACTIVE and retry."""
