"""A fleet: many orgs, each with its own credentials, run by the engines a team already has.

The environments file (``llmgw-environments.yaml`` in the working directory, or ``--environments
FILE``) lists the orgs::

    environments:
      - name: prod-us
        region: usw2.pure.cloud          # or apiUrl: (and loginUrl:), e.g. the emulator's
        clientIdEnv: PROD_US_CLIENT_ID   # names of variables: the secrets stay in the environment
        clientSecretEnv: PROD_US_CLIENT_SECRET
        paths: [manifests/base, manifests/envs/prod-us]
        labels: {tier: prod}

``load`` reads it through the loader's bounded reader, checks it against
``schemas/environments.schema.json`` and the rules a schema cannot say (unique names, a known
region or a URL ``reconciler.urls`` accepts, a variable name that is not a credential pasted in),
and reports every problem at once, at its line. ``shard_of`` assigns an environment to one of N
shards from its name alone (sha256, so every process and every Python agrees, and adding an
environment moves no other). ``child_environment`` builds the process environment of one
environment's run: its own client, URLs and name, no other environment's credentials.

The results of a run are ``Result`` records (one JSON file per environment, ``fleet-result``
documents); ``merge`` turns result documents from any number of shards into one ``Report``, the
exit code the worst of them (``SEVERITY``). Everything here is pure apart from reading the
environments file: no processes (``reconciler.fleetrun`` runs them), no printing, no clock.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from reconciler import formats, schema
from reconciler.endpoints import REGIONS
from reconciler.loader import display_path, load_data_file
from reconciler.model import Locations, Problem
from reconciler.text import shown, visible
from reconciler.urls import UrlProblem, check, is_loopback, region_domain, region_urls

DEFAULT_FILE = "llmgw-environments.yaml"
SCHEMA_FILE = "environments.schema.json"
MAX_ENVIRONMENTS = 10_000  # the schema's maxItems
MAX_SHARDS = 10_000
RULE = "environments"

# the variables llmgw itself reads for one org: set per environment, never inherited
CONNECTION_PREFIX = "GENESYS_CLOUD_"
ENVIRONMENT_VARIABLE = "LLMGW_ENVIRONMENT"

# Result files: their own small document family (not the plan schema's; see README).
RESULT_DOCUMENT = "fleet-result"
REPORT_DOCUMENT = "fleet-report"
RESULT_FORMAT = "1.0"
RESULT_MAJOR = 1
COMMANDS = ("plan", "drift", "apply")

# Exit codes from least to most severe: the fleet's exit code is the worst of its environments.
# 2 (changes or drift found) is a finding, not a failure: one environment failing (1) says more.
# A usage error (64: the same ARGS reach every environment) is worse than one failure, and an
# internal error (3, a bug) is the worst of all.
SEVERITY = (0, 2, 1, 64, 3)

OK, CHANGES, DRIFT, FAILED, TIMEOUT, USAGE, INTERNAL, INTERRUPTED, NOT_STARTED = (
    "ok",
    "changes",
    "drift",
    "failed",
    "timeout",
    "usage-error",
    "internal-error",
    "interrupted",
    "not-started",
)
STATUSES = (OK, CHANGES, DRIFT, FAILED, TIMEOUT, USAGE, INTERNAL, INTERRUPTED, NOT_STARTED)


def worst(codes: Iterable[int]) -> int:
    """The most severe of ``codes`` by ``SEVERITY`` (0 when there are none); an unknown code
    counts as a failure (1)."""
    ranked = [c if c in SEVERITY else 1 for c in codes]
    return max(ranked, key=SEVERITY.index, default=0)


# -- environments -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Environment:
    """One org of the fleet. ``region`` is the bare domain when the URLs come from it."""

    name: str
    paths: tuple[str, ...]
    client_id_env: str
    client_secret_env: str
    api_url: str
    login_url: str
    region: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    source: str = ""  # file:line

    def connection(self) -> dict[str, str]:
        """The variables that point llmgw at this org (no credentials): the region, or the
        URLs, as ``Settings.from_env`` reads them."""
        if self.region:
            return {"GENESYS_CLOUD_REGION": self.region}
        return {"GENESYS_CLOUD_API_URL": self.api_url, "GENESYS_CLOUD_LOGIN_URL": self.login_url}

    def as_dict(self, shard: Shard | None = None) -> dict[str, Any]:
        """For ``fleet list`` and result files: never a secret, only the variables' names."""
        return {
            "name": self.name,
            "region": self.region,
            "apiUrl": self.api_url,
            "loginUrl": self.login_url,
            "clientIdEnv": self.client_id_env,
            "clientSecretEnv": self.client_secret_env,
            "paths": list(self.paths),
            "labels": dict(sorted(self.labels.items())),
            "shard": str(Shard(shard_of(self.name, shard.total), shard.total)) if shard else None,
        }


@dataclass
class Fleet:
    file: str
    environments: list[Environment] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def names(self) -> list[str]:
        return [e.name for e in self.environments]


def _problem(file: str, line: int, path: str, message: str, fix: str = "") -> Problem:
    return Problem(file, line, "error", "", "", path, message, fix, RULE)


def load(path: str | None = None) -> Fleet:
    """The environments of ``path`` (None: ``DEFAULT_FILE`` in the working directory), with
    every problem of the file; ``environments`` is empty when there is any error."""
    path = path or DEFAULT_FILE
    shown_path = display_path(path)
    if not os.path.lexists(path):
        fix = "create it (see README: Fleets) or pass --environments FILE"
        return Fleet(shown_path, problems=[_problem(shown_path, 0, "", "no such file", fix)])
    data, loc, problems = load_data_file(path, shown_path, dates=False)
    fleet = Fleet(shown_path, problems=list(problems))
    if problems:
        return fleet
    if data is None:
        fleet.problems.append(
            _problem(shown_path, 1, "", "the file is empty", "list the orgs under `environments:`")
        )
        return fleet
    fleet.problems += _secrets_shown(schema.check_file(SCHEMA_FILE, data, loc, shown_path), data)
    entries = data.get("environments") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return fleet
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        env = _environment(entry, i, loc, shown_path, fleet.problems)
        name = entry.get("name")
        if isinstance(name, str):
            line = loc.line(("environments", i, "name"))
            if name in seen:
                fleet.problems.append(
                    _problem(
                        shown_path,
                        line,
                        f"environments[{i}].name",
                        f"{shown(name)} is already the name of the environment at line "
                        f"{seen[name]}",
                        "give every environment its own name",
                    )
                )
            seen.setdefault(name, line)
        if env is not None:
            fleet.environments.append(env)
    fleet.problems.sort()
    if fleet.errors:
        fleet.environments = []
    return fleet


# A variable's name is upper-case letters, digits and _ (the schema). A long run of letters and
# digits with no _, or a value with the characters of tokens and UUIDs, is far more likely a
# credential pasted in than a variable's name: refused without being quoted back.
_CREDENTIAL_LIKE = re.compile(r"(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9]{20,}")
_TOKEN_CHARACTERS = frozenset("+/=-.~:@!#$%^&*")
_VARIABLE_FIELDS = ("clientIdEnv", "clientSecretEnv")


def looks_like_a_credential(value: str) -> bool:
    """True when ``value``, given as a variable's name, looks like the secret itself."""
    if _CREDENTIAL_LIKE.fullmatch(value):
        return True
    return len(value) >= 12 and " " not in value and bool(_TOKEN_CHARACTERS & set(value))


def _secrets_shown(problems: list[Problem], data: Any) -> list[Problem]:
    """The schema's problems, with those of the variable-name fields reworded so that a value
    which may be a credential is never quoted back (into a CI log)."""
    out = []
    for p in problems:
        m = re.fullmatch(r"environments\[(\d+)\]\.(clientIdEnv|clientSecretEnv)", p.path)
        if m is None or p.rule not in ("schema.pattern", "schema.type"):
            out.append(p)
            continue
        value = data["environments"][int(m.group(1))].get(m.group(2))
        if isinstance(value, str) and looks_like_a_credential(value):
            out.append(_credential(p.file, p.line, p.path))
        elif isinstance(value, str):
            message = schema.PATTERN_WORDS[schema.VARIABLE_NAME] + f" (got {shown(value)})"
            fix = "write the variable's name in upper case, e.g. PROD_US_CLIENT_ID"
            out.append(_problem(p.file, p.line, p.path, message, fix))
        else:
            out.append(p)
    return out


def _credential(file: str, line: int, path: str) -> Problem:
    return _problem(
        file,
        line,
        path,
        "holds what looks like a credential, not the name of the environment variable that "
        "holds it (the value is not shown)",
        "remove it from the file (and rotate it if it was real), name a variable such as "
        "PROD_US_CLIENT_SECRET, and set that variable from your CI's secrets",
    )


def _environment(
    entry: dict[str, Any], i: int, loc: Locations, file: str, problems: list[Problem]
) -> Environment | None:
    """The environment of one valid entry (None when it has problems, which are added)."""
    where = f"environments[{i}]"
    line = loc.line(("environments", i))
    before = len(problems)
    region, api, login = entry.get("region"), entry.get("apiUrl"), entry.get("loginUrl")
    domain: str | None = None
    if region is not None and api is not None:
        problems.append(
            _problem(
                file,
                loc.key_line(("environments", i, "apiUrl")),
                where,
                "gives both region and apiUrl",
                "keep one: region for a Genesys Cloud org, apiUrl (and loginUrl) otherwise",
            )
        )
    elif region is None and api is None:
        problems.append(
            _problem(
                file,
                line,
                where,
                "missing required field `region` (or `apiUrl`)",
                "add `region: usw2.pure.cloud` (the org's region) or `apiUrl:`",
            )
        )
    elif isinstance(region, str):
        domain = region_domain(region)
        if domain not in REGIONS:
            problems.append(
                _problem(
                    file,
                    loc.line(("environments", i, "region")),
                    f"{where}.region",
                    f"unknown region {shown(region)}",
                    "use one of " + ", ".join(REGIONS) + "; or give apiUrl and loginUrl",
                )
            )
        if login is not None:
            problems.append(
                _problem(
                    file,
                    loc.key_line(("environments", i, "loginUrl")),
                    f"{where}.loginUrl",
                    "loginUrl goes with apiUrl; a region gives its own",
                    "remove it, or give apiUrl instead of region",
                )
            )
    if isinstance(api, str) and region is None:
        api = _url(api, f"{where}.apiUrl", loc.line(("environments", i, "apiUrl")), file, problems)
        if isinstance(login, str):
            login = _url(
                login,
                f"{where}.loginUrl",
                loc.line(("environments", i, "loginUrl")),
                file,
                problems,
            )
        elif login is None and api and not is_loopback(urlsplit(api).hostname or ""):
            problems.append(
                _problem(
                    file,
                    loc.line(("environments", i, "apiUrl")),
                    f"{where}.loginUrl",
                    "missing loginUrl (only a loopback apiUrl, such as the emulator's, may go "
                    "without one)",
                    "add the org's login URL, e.g. https://login.<domain>, or use region",
                )
            )
    ids = (entry.get("clientIdEnv"), entry.get("clientSecretEnv"))
    for key, value in zip(_VARIABLE_FIELDS, ids, strict=True):
        named = isinstance(value, str) and schema.ecma_regex(schema.VARIABLE_NAME).search(value)
        if named and looks_like_a_credential(str(value)):
            problems.append(_credential(file, loc.line(("environments", i, key)), f"{where}.{key}"))
    if isinstance(ids[0], str) and ids[0] == ids[1]:
        problems.append(
            _problem(
                file,
                loc.line(("environments", i, "clientSecretEnv")),
                f"{where}.clientSecretEnv",
                f"is the same variable as clientIdEnv ({ids[0]})",
                "name the variable that holds the secret",
            )
        )
    if len(problems) > before or any(p.path.startswith(f"{where}.") for p in problems):
        return None
    name = entry.get("name")
    paths = entry.get("paths")
    if not (
        isinstance(name, str) and isinstance(paths, list) and all(isinstance(x, str) for x in ids)
    ):
        return None
    labels = entry.get("labels") or {}
    if domain:
        api, login = region_urls(domain)
    return Environment(
        name=name,
        paths=tuple(str(p) for p in paths),
        client_id_env=str(ids[0]),
        client_secret_env=str(ids[1]),
        api_url=str(api),
        login_url=str(login or api),
        region=domain,
        labels={str(k): str(v) for k, v in labels.items()},
        source=f"{file}:{line}",
    )


def _url(value: str, path: str, line: int, file: str, problems: list[Problem]) -> str | None:
    try:
        parsed = check(value, what=path)
    except UrlProblem as exc:
        problems.append(
            _problem(file, line, path, str(exc), "write e.g. https://api.<domain> or use region")
        )
        return None
    if parsed.query or "#" in value:
        problems.append(_problem(file, line, path, "has a query or fragment", "write the bare URL"))
        return None
    return value.rstrip("/")


# -- shards -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``total``, 0-based as Kubernetes' JOB_COMPLETION_INDEX (0..N-1); GitLab's
    1-based CI_NODE_INDEX is written ``$((CI_NODE_INDEX - 1))/$CI_NODE_TOTAL``."""

    index: int
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``I/N``; ValueError saying what is wrong."""
        m = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", text)
        if m is None:
            raise ValueError(
                f"{shown(text)} is not a shard: write I/N, such as 0/4 (I from 0 to N-1, as "
                "JOB_COMPLETION_INDEX counts)"
            )
        index, total = int(m.group(1)), int(m.group(2))
        if not 1 <= total <= MAX_SHARDS:
            raise ValueError(f"shard {text.strip()}: N must be from 1 to {MAX_SHARDS:,}")
        if index >= total:
            hint = " (shards count from 0; with GitLab's CI_NODE_INDEX, subtract 1)"
            raise ValueError(f"shard {text.strip()}: I must be from 0 to {total - 1}{hint}")
        return cls(index, total)

    def holds(self, name: str) -> bool:
        return shard_of(name, self.total) == self.index


def shard_of(name: str, total: int) -> int:
    """The shard (0..total-1) of the environment ``name``: from its name and ``total`` alone
    (sha256, not Python's salted hash()), so each environment is in exactly one shard, every
    process agrees, and adding or removing an environment moves no other."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % total


def select(
    environments: Sequence[Environment], shard: Shard | None, names: Sequence[str] = ()
) -> list[Environment]:
    """The environments of ``shard`` (all when None), only ``names`` when given, in file order."""
    wanted = set(names)
    return [
        e
        for e in environments
        if (shard is None or shard.holds(e.name)) and (not wanted or e.name in wanted)
    ]


def unknown_names(environments: Sequence[Environment], names: Sequence[str]) -> list[str]:
    known = {e.name for e in environments}
    return [n for n in names if n not in known]


# -- one environment's process environment ---------------------------------------------------------
def child_environment(
    parent: Mapping[str, str], env: Environment, fleet: Sequence[Environment]
) -> tuple[dict[str, str] | None, str | None]:
    """The variables of ``env``'s run: the parent's, less every connection variable, the
    environment's name and every environment's credential variables, plus ``env``'s client id
    and secret as GENESYS_CLOUD_CLIENT_ID/SECRET and its region or URLs. (None, why) when a
    credential variable is unset or empty: that environment's failure, not the fleet's."""
    missing = [v for v in (env.client_id_env, env.client_secret_env) if not parent.get(v)]
    if missing:
        words = " and ".join(missing)
        return None, (
            f"{'variable' if len(missing) == 1 else 'variables'} {words} "
            f"{'is' if len(missing) == 1 else 'are'} not set (the credentials of {env.name}): "
            "export them, e.g. from your CI's secrets"
        )
    credentials = {v for e in fleet for v in (e.client_id_env, e.client_secret_env)}
    child = {
        k: v
        for k, v in parent.items()
        if not k.startswith(CONNECTION_PREFIX)
        and k != ENVIRONMENT_VARIABLE
        and k not in credentials
    }
    child.update(env.connection())
    child["GENESYS_CLOUD_CLIENT_ID"] = parent[env.client_id_env]
    child["GENESYS_CLOUD_CLIENT_SECRET"] = parent[env.client_secret_env]
    return child, None


def secrets_of(parent: Mapping[str, str], fleet: Sequence[Environment]) -> list[str]:
    """The secret values the fleet's variables hold, for the redactor."""
    return [parent[e.client_secret_env] for e in fleet if parent.get(e.client_secret_env)]


# -- results ---------------------------------------------------------------------------------------
def summarize(command: str, output: Any) -> dict[str, Any]:
    """The counts a report shows from a command's JSON output ({} when it has none)."""
    if not isinstance(output, dict):
        return {}
    if command == "plan" and isinstance(output.get("summary"), dict):
        s = output["summary"]
        counts = {
            k: s[k] for k in ("create", "update", "adopt", "replace", "delete") if _n(s.get(k))
        }
        return {"changes": sum(counts.values()), "actions": counts}
    if command == "drift" and isinstance(output.get("counts"), dict):
        c = output["counts"]
        counts = {k: c[k] for k in ("modified", "missing", "orphaned") if _n(c.get(k))}
        checked = output.get("checked")
        return {
            "drifted": sum(counts.values()),
            "states": counts,
            "checked": checked if _n(checked) else None,
        }
    if command == "apply" and isinstance(output.get("operations"), list):
        outcomes: dict[str, int] = {}
        for op in output["operations"]:
            outcome = op.get("outcome") if isinstance(op, dict) else None
            if isinstance(outcome, str):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return {
            "applied": outcomes.get("applied", 0),
            "outcomes": dict(sorted(outcomes.items())),
            "verified": output.get("verified") is True,
        }
    return {}


def _n(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def status_of(command: str, code: int, summary: Mapping[str, Any]) -> str:
    """What one environment's exit code (and output) means."""
    if code == 0:
        return CHANGES if command == "plan" and summary.get("changes") else OK
    if code == 2:
        return DRIFT if command == "drift" else CHANGES
    if code == 64:
        return USAGE
    if code == 3:
        return INTERNAL
    return FAILED


@dataclass
class Result:
    """One environment's run. ``exit_code`` is what it counts as for the fleet (0, 1, 2, 3 or
    64); ``process_exit`` is the child's own (None when none ran, or a signal ended it)."""

    name: str
    command: str
    status: str
    exit_code: int
    environment: dict[str, Any] = field(default_factory=dict)
    process_exit: int | None = None
    duration: float = 0.0
    started: str | None = None
    finished: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    error: str | None = None
    stderr: str = ""
    source: str = ""  # the result file it was read from

    def as_dict(self, *, output: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "formatVersion": RESULT_FORMAT,
            "document": RESULT_DOCUMENT,
            "name": self.name,
            "command": self.command,
            "status": self.status,
            "exitCode": self.exit_code,
            "processExitCode": self.process_exit,
            "durationSeconds": round(self.duration, 3),
            "startedAt": self.started,
            "finishedAt": self.finished,
            "environment": self.environment,
            "summary": self.summary,
            "error": self.error,
            "stderr": self.stderr,
        }
        if output:
            out["output"] = self.output
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Result:
        """A result document as ``as_dict`` writes it; ValueError saying why it is not one."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("document") != RESULT_DOCUMENT:
            raise ValueError(
                f"not an llmgw fleet result (document {shown(data.get('document'))}, expected "
                f"{RESULT_DOCUMENT!r})"
            )
        if formats.major(data.get("formatVersion")) != RESULT_MAJOR:
            raise ValueError(
                f"format {shown(data.get('formatVersion'))} is not one this llmgw reads "
                f"({RESULT_MAJOR}.x): use the llmgw that wrote it"
            )
        name, command, status, code = (
            data.get(k) for k in ("name", "command", "status", "exitCode")
        )
        if not (isinstance(name, str) and schema.ecma_regex(schema.ENVIRONMENT_NAME).search(name)):
            raise ValueError(f"name {shown(name)} is not an environment's name")
        if command not in COMMANDS or status not in STATUSES:
            raise ValueError(f"command {shown(command)} or status {shown(status)} unknown")
        if not _n(code) or code not in SEVERITY:
            raise ValueError(f"exitCode {shown(code)} is not 0, 1, 2, 3 or 64")
        duration = data.get("durationSeconds")
        process = data.get("processExitCode")
        return cls(
            name=name,
            command=command,
            status=status,
            exit_code=code,
            environment=data["environment"] if isinstance(data.get("environment"), dict) else {},
            process_exit=process if isinstance(process, int) else None,
            duration=float(duration) if isinstance(duration, int | float) else 0.0,
            started=_str(data.get("startedAt")),
            finished=_str(data.get("finishedAt")),
            summary=data["summary"] if isinstance(data.get("summary"), dict) else {},
            output=data.get("output"),
            error=_str(data.get("error")),
            stderr=_str(data.get("stderr")) or "",
            source=source,
        )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class Report:
    """Results of one run or merged from several shards, by name; ``problems`` are the files
    that could not be read as results (each counts as a failure)."""

    results: list[Result] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    interrupted: int | None = None  # the signal that stopped the run, if one did

    @property
    def exit_code(self) -> int:
        codes = [r.exit_code for r in self.results if r.status != NOT_STARTED]
        return worst([*codes, *([1] if self.problems else [])])

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def counts(self) -> dict[str, int]:
        return {s: self.count(s) for s in STATUSES if self.count(s)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "formatVersion": RESULT_FORMAT,
            "document": REPORT_DOCUMENT,
            "exitCode": self.exit_code,
            "counts": self.counts(),
            "environments": [r.as_dict(output=False) for r in self.results],
            "problems": list(self.problems),
        }


def merge(documents: Iterable[tuple[str, Any]], problems: Sequence[str] = ()) -> Report:
    """One report from result documents ``(source, parsed JSON)`` of any number of shards:
    sorted by name; a document that is no result, or a second result for one environment, is a
    problem naming its file."""
    report = Report(problems=list(problems))
    by_name: dict[str, Result] = {}
    for source, data in documents:
        try:
            result = Result.from_dict(data, source)
        except ValueError as exc:
            report.problems.append(f"{visible(source)}: {exc}")
            continue
        if result.name in by_name:
            first = by_name[result.name].source
            report.problems.append(
                f"{visible(source)}: a second result for {result.name} (the first is in "
                f"{visible(first)}): give each shard its own results folder, or remove the "
                "stale one"
            )
            continue
        by_name[result.name] = result
    report.results = [by_name[n] for n in sorted(by_name)]
    return report
