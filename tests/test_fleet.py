"""Fleets without processes: the environments file, shards, a child's environment, results and
their merge, and the fleet commands in-process (CliRunner).

Covers: a valid file loads (region -> URLs as Settings derives them, apiUrl with or without
loginUrl on loopback); every problem of a bad file at once, each at its line with its field path
and a fix (unknown keys, duplicate names, a name no file or Kubernetes object could carry, an
unknown region, region and apiUrl together or neither, a plain-http remote URL, a remote apiUrl
without loginUrl, lower-case variable names), and a credential pasted where a variable's name
belongs refused without being quoted back; at most 10,000 environments (the schema); a missing
default file. Shards: 50 environments in N = 1..7 shards, each in exactly one; adding
environments moves none (and a hypothesis property of both); the assignment pinned to sha256 of
the name; I/N parsed 0-based with clear refusals. A child's environment: its own client as
GENESYS_CLOUD_CLIENT_ID/SECRET, its URLs or region, no other environment's credentials, no
inherited GENESYS_CLOUD_* or LLMGW_ENVIRONMENT; an unset variable is that environment's message.
The worst exit code (3 > 64 > 1 > 2 > 0), statuses and summaries from real JSON shapes; a result
round-trips through its document; merge refuses foreign, corrupt and duplicate results, naming
the file; read_results skips dot-files and bounds file sizes. The CLI: fleet list in text, JSON
and github-matrix (one line, no secret, 256 at most with advice to shard), usage errors (64) for
a bad --shard, an unknown --name, a path or a fleet-set option in ARGS, apply without
--auto-approve; an invalid environments file is exit 1 with file:line lines; fleet report of
results with a foreign file exits 1 and still shows the rest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from reconciler import fleet, fleetrun, schema
from reconciler.cli import cli
from reconciler.fleet import Environment, Result, Shard
from reconciler.model import Locations
from reconciler.views import fleet as fleet_views

GOOD = """\
environments:
  - name: prod-us
    region: usw2.pure.cloud
    clientIdEnv: PROD_US_CLIENT_ID
    clientSecretEnv: PROD_US_CLIENT_SECRET
    paths: [manifests/base, manifests/envs/prod-us]
    labels: {tier: prod}
  - name: emulator
    apiUrl: http://127.0.0.1:8787
    clientIdEnv: EMU_ID
    clientSecretEnv: EMU_SECRET
    paths: [manifests]
  - name: eu
    apiUrl: https://api.mypurecloud.ie
    loginUrl: https://login.mypurecloud.ie/
    clientIdEnv: EU_ID
    clientSecretEnv: EU_SECRET
    paths: [manifests]
"""


def _write(tmp_path: Path, text: str, name: str = "envs.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _env(name: str, **kw: Any) -> Environment:
    kw.setdefault("paths", ("m",))
    kw.setdefault("client_id_env", f"{name.upper().replace('-', '_')}_ID")
    kw.setdefault("client_secret_env", f"{name.upper().replace('-', '_')}_SECRET")
    kw.setdefault("api_url", "http://127.0.0.1:1")
    kw.setdefault("login_url", "http://127.0.0.1:1")
    return Environment(name=name, **kw)


# -- the environments file ----------------------------------------------------------------------
def test_a_valid_file_loads(tmp_path: Path) -> None:
    loaded = fleet.load(_write(tmp_path, GOOD))
    assert loaded.problems == []
    us, emu, eu = loaded.environments
    assert (us.api_url, us.login_url, us.region) == (
        "https://api.usw2.pure.cloud",
        "https://login.usw2.pure.cloud",
        "usw2.pure.cloud",
    )
    assert us.connection() == {"GENESYS_CLOUD_REGION": "usw2.pure.cloud"}
    assert us.paths == ("manifests/base", "manifests/envs/prod-us")
    assert dict(us.labels) == {"tier": "prod"}
    assert emu.login_url == emu.api_url == "http://127.0.0.1:8787"  # loopback: as Settings does
    assert eu.connection() == {
        "GENESYS_CLOUD_API_URL": "https://api.mypurecloud.ie",
        "GENESYS_CLOUD_LOGIN_URL": "https://login.mypurecloud.ie",
    }
    assert us.source.endswith("envs.yaml:2")


BAD = """\
environments:
  - name: Prod_US
    region: usw9.pure.cloud
    clientIdEnv: prod_us_id
    clientSecretEnv: PROD_US_SECRET
    paths: [m]
    colour: blue
  - name: dup
    region: usw2.pure.cloud
    apiUrl: https://api.usw2.pure.cloud
    clientIdEnv: DUP_ID
    clientSecretEnv: DUP_SECRET
    paths: [m]
  - name: dup
    clientIdEnv: DUP2_ID
    clientSecretEnv: DUP2_SECRET
    paths: []
  - name: remote
    apiUrl: http://api.example.com
    clientIdEnv: R_ID
    clientSecretEnv: R_SECRET
    paths: [m]
  - name: nologin
    apiUrl: https://api.example.com
    clientIdEnv: N_ID
    clientSecretEnv: N_ID
    paths: [m]
"""


def test_every_problem_at_once_at_its_line(tmp_path: Path) -> None:
    loaded = fleet.load(_write(tmp_path, BAD))
    assert loaded.environments == []
    got = [(p.line, p.path, p.message) for p in loaded.problems]
    expected = [
        (2, "environments[0].name", "must be lower-case letters, digits and `-`"),
        (3, "environments[0].region", 'unknown region "usw9.pure.cloud"'),
        (4, "environments[0].clientIdEnv", "must name an environment variable"),
        (7, "environments[0].colour", "unknown field `colour`"),
        (10, "environments[1]", "gives both region and apiUrl"),
        (14, "environments[2]", "missing required field `region` (or `apiUrl`)"),
        (14, "environments[2].name", '"dup" is already the name of the environment at line 8'),
        (17, "environments[2].paths", "must list at least 1 item"),
        (19, "environments[3].apiUrl", "plain http"),
        (24, "environments[4].loginUrl", "missing loginUrl"),
        (26, "environments[4].clientSecretEnv", "is the same variable as clientIdEnv"),
    ]
    assert len(got) == len(expected), "\n".join(str(p) for p in loaded.problems)
    for (line, path, message), (eline, epath, emessage) in zip(got, expected, strict=True):
        assert (line, path) == (eline, epath), (line, path, message)
        assert emessage in message, message
    assert all(p.fix for p in loaded.problems if p.rule == fleet.RULE)
    assert all(str(p).startswith(f"{loaded.file}:") for p in loaded.problems)


@pytest.mark.parametrize(
    "value",
    [
        "0b6c1d2e-5f3a-4c1b-9d8e-7f6a5b4c3d2e",  # a client id
        "Zm9vYmFyYmF6cXV4cXV1eA==",  # base64
        "AKIAIOSFODNN7EXAMPLE1234",  # upper case letters and digits, no _
        "s3cr3t-P@ssw0rd!",
    ],
)
def test_a_credential_in_the_file_is_refused_and_never_shown(tmp_path: Path, value: str) -> None:
    text = GOOD.replace("clientSecretEnv: PROD_US_CLIENT_SECRET", f'clientSecretEnv: "{value}"')
    loaded = fleet.load(_write(tmp_path, text))
    (problem,) = loaded.problems
    assert problem.path == "environments[0].clientSecretEnv" and problem.line == 5
    assert "looks like a credential" in problem.message and "rotate" in problem.fix
    assert value not in str(problem)


def test_variable_names_are_not_mistaken_for_credentials() -> None:
    for name in ("PROD_US_CLIENT_SECRET", "A", "_X", "GENESYS_CLOUD_CLIENT_ID_PROD_EU_2"):
        assert not fleet.looks_like_a_credential(name), name


def test_at_most_10000_environments() -> None:
    entry = {"name": "e", "region": "usw2.pure.cloud", "clientIdEnv": "A", "clientSecretEnv": "B"}
    data = {"environments": [{**entry, "paths": ["m"]}] * (fleet.MAX_ENVIRONMENTS + 1)}
    problems = schema.check_file(fleet.SCHEMA_FILE, data, Locations(), "f.yaml")
    assert [(p.path, p.rule) for p in problems] == [("environments", "schema.maxItems")]


def test_a_missing_or_empty_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (problem,) = fleet.load(None).problems
    assert (problem.file, problem.message) == ("llmgw-environments.yaml", "no such file")
    assert "--environments" in problem.fix
    (problem,) = fleet.load(_write(tmp_path, "")).problems
    assert "empty" in problem.message


# -- shards -----------------------------------------------------------------------------------
NAMES = [f"org-{i:02d}" for i in range(50)]


@pytest.mark.parametrize("total", range(1, 8))
def test_each_of_50_environments_is_in_exactly_one_shard(total: int) -> None:
    envs = [_env(n) for n in NAMES]
    shards = [fleet.select(envs, Shard(i, total)) for i in range(total)]
    names = sorted(e.name for shard in shards for e in shard)
    assert names == NAMES
    if total > 1:
        assert all(shards), "50 names leave no shard of 7 or fewer empty"


@pytest.mark.parametrize("total", range(1, 8))
def test_adding_environments_moves_none(total: int) -> None:
    before = {n: fleet.shard_of(n, total) for n in NAMES}
    more = [*NAMES, *(f"new-{i}" for i in range(25))]
    envs = [_env(n) for n in more]
    after = {e.name: i for i in range(total) for e in fleet.select(envs, Shard(i, total))}
    assert {n: after[n] for n in NAMES} == before


@given(
    st.lists(st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True), unique=True, max_size=40),
    st.lists(st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True), max_size=10),
    st.integers(1, 300),
)
def test_shards_partition_and_stay_put(names: list[str], added: list[str], total: int) -> None:
    envs = [_env(n) for n in names]
    held = [[e.name for e in fleet.select(envs, Shard(i, total))] for i in range(total)]
    assert sorted(n for shard in held for n in shard) == sorted(names)
    grown = envs + [_env(n) for n in added if n not in names]
    for i, shard in enumerate(held):
        still = {e.name for e in fleet.select(grown, Shard(i, total))}
        assert set(shard) <= still


def test_the_assignment_is_sha256_of_the_name() -> None:
    """Pinned: every llmgw, on every machine and Python, puts an environment in one shard."""
    digest = hashlib.sha256(b"prod-us").digest()
    assert fleet.shard_of("prod-us", 7) == int.from_bytes(digest[:8], "big") % 7
    assert [fleet.shard_of("prod-us", n) for n in (2, 3, 5, 7)] == [
        int.from_bytes(digest[:8], "big") % n for n in (2, 3, 5, 7)
    ]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("1", "is not a shard"),
        ("a/b", "is not a shard"),
        ("-1/3", "is not a shard"),
        ("3/3", "I must be from 0 to 2 (shards count from 0"),
        ("0/0", "N must be from 1"),
        ("0/10001", "N must be from 1 to 10,000"),
    ],
)
def test_bad_shards(text: str, said: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        Shard.parse(text)
    assert said in str(info.value)


def test_good_shards() -> None:
    assert Shard.parse("0/1") == Shard(0, 1)
    assert str(Shard.parse(" 6 / 7 ")) == "6/7"


# -- a child's environment ------------------------------------------------------------------------
def test_a_child_gets_its_own_credentials_and_no_other() -> None:
    a = _env("a", client_id_env="A_ID", client_secret_env="A_SECRET")
    b = _env("b", client_id_env="B_ID", client_secret_env="B_SECRET", region="usw2.pure.cloud")
    parent = {
        "PATH": "/bin",
        "A_ID": "id-a",
        "A_SECRET": "secret-a",
        "B_ID": "id-b",
        "B_SECRET": "secret-b",
        "GENESYS_CLOUD_CLIENT_SECRET": "inherited",
        "GENESYS_CLOUD_REGION": "mypurecloud.de",
        "LLMGW_ENVIRONMENT": "other",
        "LLMGW_AUDIT_KEY": "kept",
    }
    child, why = fleet.child_environment(parent, b, [a, b])
    assert why is None and child is not None
    assert child == {
        "PATH": "/bin",
        "LLMGW_AUDIT_KEY": "kept",
        "GENESYS_CLOUD_REGION": "usw2.pure.cloud",
        "GENESYS_CLOUD_CLIENT_ID": "id-b",
        "GENESYS_CLOUD_CLIENT_SECRET": "secret-b",
    }
    child, _ = fleet.child_environment(parent, a, [a, b])
    assert child is not None and child["GENESYS_CLOUD_API_URL"] == "http://127.0.0.1:1"
    assert "secret-b" not in child.values() and "B_SECRET" not in child
    assert fleet.secrets_of(parent, [a, b]) == ["secret-a", "secret-b"]


def test_an_unset_credential_is_that_environments_message() -> None:
    a = _env("a", client_id_env="A_ID", client_secret_env="A_SECRET")
    child, why = fleet.child_environment({"A_ID": "x", "A_SECRET": ""}, a, [a])
    assert child is None
    assert why is not None and why.startswith("variable A_SECRET is not set (the credentials of a)")


# -- results ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("codes", "worst"),
    [([], 0), ([0, 0], 0), ([0, 2], 2), ([2, 1], 1), ([1, 64], 64), ([64, 3, 1, 2], 3), ([7], 1)],
)
def test_the_worst_exit_code(codes: list[int], worst: int) -> None:
    assert fleet.worst(codes) == worst


PLAN = {"summary": {"create": 2, "update": 1, "adopt": 0, "replace": 0, "delete": 0, "noop": 4}}
DRIFT = {"checked": 10, "counts": {"modified": 1, "missing": 2, "orphaned": 0, "unmanaged": 3}}
APPLY = {"verified": True, "operations": [{"outcome": "applied"}, {"outcome": "failed"}]}


def test_summaries_and_statuses() -> None:
    plan = fleet.summarize("plan", PLAN)
    assert plan == {
        "changes": 3,
        "actions": {"create": 2, "update": 1, "adopt": 0, "replace": 0, "delete": 0},
    }
    assert fleet_views.describe(plan, "plan") == "3 changes (2 create, 1 update)"
    assert fleet.status_of("plan", 0, plan) == "changes"  # without --detailed-exitcode too
    assert fleet.status_of("plan", 0, fleet.summarize("plan", {"summary": {}})) == "ok"
    drift = fleet.summarize("drift", DRIFT)
    assert fleet_views.describe(drift, "drift") == "3 of 10 drifted (1 modified, 2 missing)"
    assert fleet.status_of("drift", 2, drift) == "drift"
    apply = fleet.summarize("apply", APPLY)
    assert fleet_views.describe(apply, "apply") == "1 applied, verified"
    assert [fleet.status_of("apply", c, {}) for c in (1, 3, 64)] == [
        "failed",
        "internal-error",
        "usage-error",
    ]
    assert fleet.summarize("drift", None) == {} and fleet.summarize("plan", [1]) == {}


def _result(name: str = "prod-us", **kw: Any) -> Result:
    kw.setdefault("command", "drift")
    kw.setdefault("status", "drift")
    kw.setdefault("exit_code", 2)
    return Result(name=name, **kw)


def test_a_result_round_trips_through_its_document() -> None:
    r = _result(summary={"drifted": 1}, output={"x": 1}, error=None, duration=1.25)
    back = Result.from_dict(json.loads(json.dumps(r.as_dict())), "r.json")
    assert back.as_dict() == r.as_dict()
    assert back.source == "r.json"


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ([], "not a JSON object"),
        ({"formatVersion": "2.0", "document": "plan"}, "not an llmgw fleet result"),
        ({**_result().as_dict(), "formatVersion": "2.0"}, "is not one this llmgw reads"),
        ({**_result().as_dict(), "name": "../etc"}, "is not an environment's name"),
        ({**_result().as_dict(), "exitCode": 5}, "is not 0, 1, 2, 3 or 64"),
        ({**_result().as_dict(), "status": "great"}, "unknown"),
    ],
)
def test_merge_names_what_is_no_result(data: Any, said: str) -> None:
    report = fleet.merge([("a/x.json", data), ("b/ok.json", _result("ok").as_dict())])
    assert [r.name for r in report.results] == ["ok"]
    (problem,) = report.problems
    assert problem.startswith("a/x.json: ") and said in problem
    assert report.exit_code == 1  # a file not read fails the report (the result alone is 2)


def test_merge_sorts_and_refuses_a_second_result_for_one_environment() -> None:
    docs = [
        (f"s{i}/{n}.json", _result(n, status="ok", exit_code=0).as_dict())
        for i, n in enumerate("cab")
    ]
    docs.append(("s9/a.json", _result("a").as_dict()))
    report = fleet.merge(docs)
    assert [r.name for r in report.results] == ["a", "b", "c"]
    assert report.problems == [
        "s9/a.json: a second result for a (the first is in s1/a.json): give each shard its own "
        "results folder, or remove the stale one"
    ]
    not_started = fleet.merge([("x.json", _result(status="not-started", exit_code=1).as_dict())])
    assert not_started.exit_code == 0  # counted by the interrupted run's own exit code


def test_read_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = tmp_path / "shard-0", tmp_path / "shard-1"
    one.mkdir()
    two.mkdir()
    (one / "a.json").write_text(json.dumps(_result("a", status="ok", exit_code=0).as_dict()))
    (two / "b.json").write_text(json.dumps(_result("b").as_dict()))
    (two / ".b.json.tmp-1").write_text("half a fil")  # one being written: skipped
    (two / "notes.txt").write_text("not a result")  # not .json: skipped
    report = fleetrun.read_results([str(one), str(two)])
    assert ([r.name for r in report.results], report.problems, report.exit_code) == (
        ["a", "b"],
        [],
        2,
    )
    (two / "c.json").write_text('{"document": "fleet-result"')
    (two / "d.json").write_bytes(b"\xff\xfe")
    monkeypatch.setattr(fleetrun, "MAX_RESULT_FILE", 40)
    report = fleetrun.read_results([str(one), str(two), str(tmp_path / "nowhere")])
    said = "\n".join(report.problems)
    assert "a.json: file is larger than" in said  # both results are over 40 bytes now
    assert "c.json: not a JSON document (JSONDecodeError)" in said
    assert "nowhere: cannot be read" in said


# -- the commands, in-process ---------------------------------------------------------------------
def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def envs_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    return _write(tmp_path, GOOD, fleet.DEFAULT_FILE)


def test_fleet_list_formats(envs_file: str) -> None:
    secrets = {"PROD_US_CLIENT_SECRET": "s3cret-value-1", "EMU_SECRET": "s3cret-value-2"}
    code, out, _ = _invoke("fleet", "list", env=secrets)
    assert code == 0
    assert out.splitlines()[0].split() == ["NAME", "SHARD", "REGION", "/", "API", "PATHS", "LABELS"]
    assert "prod-us" in out and "tier=prod" in out and out.endswith("3 environments.\n")
    code, out, _ = _invoke("fleet", "list", "--output", "json", "--shard", "0/1", env=secrets)
    listed = json.loads(out)
    assert [e["name"] for e in listed] == ["prod-us", "emulator", "eu"]
    assert listed[0]["shard"] == "0/1" and listed[0]["clientSecretEnv"] == "PROD_US_CLIENT_SECRET"
    code, out, _ = _invoke("fleet", "list", "-o", "github-matrix", env=secrets)
    assert code == 0 and out.count("\n") == 1
    matrix = json.loads(out)
    assert [e["name"] for e in matrix["include"]] == ["prod-us", "emulator", "eu"]
    for value in secrets.values():
        assert value not in out


def test_the_github_matrix_holds_256_at_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    entries = "".join(
        f"  - {{name: org-{i}, region: usw2.pure.cloud, clientIdEnv: ID_{i}, "
        f"clientSecretEnv: SECRET_{i}, paths: [m]}}\n"
        for i in range(300)
    )
    _write(tmp_path, "environments:\n" + entries, fleet.DEFAULT_FILE)
    code, _, err = _invoke("fleet", "list", "-o", "github-matrix")
    assert code == 1
    assert "300 environments are more than the 256 jobs one GitHub Actions matrix runs" in err
    assert "--shard I/2" in err
    code, out, _ = _invoke("fleet", "list", "-o", "github-matrix", "--shard", "1/2")
    assert code == 0 and 100 < len(json.loads(out)["include"]) <= 256


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("fleet", "list", "--shard", "2/2"), "I must be from 0 to 1"),
        (("fleet", "run", "drift", "--name", "nope"), "--name nope: no such environment"),
        (("fleet", "run", "drift", "manifests"), "hold a path"),
        (("fleet", "run", "drift", "--", "--output", "text"), "--output in ARGS"),
        (("fleet", "run", "plan", "--", "--env=x"), "--env in ARGS"),
        (("fleet", "run", "plan", "--bogus"), "ARGS for plan: No such option '--bogus'"),
        (("fleet", "run", "plan", "--parallelism", "0"), "ARGS for plan: Invalid value"),
        (("fleet", "run", "apply", "--prune"), "needs --auto-approve"),
        (("fleet", "run", "export"), "Invalid value for '{plan|drift|apply}'"),
    ],
)
def test_usage_errors(envs_file: str, args: tuple[str, ...], said: str) -> None:
    code, out, err = _invoke(*args)
    assert code == 64, out + err
    assert said in err


def test_an_invalid_environments_file_is_exit_1_with_every_line(tmp_path: Path) -> None:
    path = _write(tmp_path, BAD)
    code, _, err = _invoke("fleet", "list", "--environments", path)
    assert code == 1
    lines = err.splitlines()
    shown = fleet.load(path).file
    assert len(lines) == 12 and lines[-1] == f"llmgw: 11 errors in the environments file {shown}"
    assert lines[0].startswith(f"{shown}:2: environments[0].name: ")


def test_fleet_report_shows_the_rest_of_a_folder_with_a_foreign_file(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(_result("a", summary={"drifted": 2}).as_dict()))
    (tmp_path / "b.json").write_text(
        json.dumps(_result("b", status="failed", exit_code=1, error="x | <b>y</b>").as_dict())
    )
    (tmp_path / "plan.json").write_text(json.dumps({"formatVersion": "2.0", "document": "plan"}))
    code, out, err = _invoke("fleet", "report", str(tmp_path), "-o", "markdown")
    assert code == 1
    assert "| `a` | drift | 2 | 2 drifted |" in out
    assert "| `b` | failed | 1 | x \\| &lt;b&gt;y&lt;/b&gt; |" in out
    assert "plan.json: not an llmgw fleet result" in out and "plan.json" in err
    code, out, _ = _invoke("fleet", "report", str(tmp_path), "-o", "json")
    report = json.loads(out)
    assert (report["document"], report["exitCode"], report["counts"]) == (
        "fleet-report",
        1,
        {"drift": 1, "failed": 1},
    )


def test_views_progress_lines() -> None:
    view = fleet_views.report_view("text")
    env = _env("a")
    assert view.progress("start", env, None) is None
    assert fleet_views.report_view("text", verbose=True).progress("start", env, None) == (
        "llmgw fleet: a: started"
    )
    line = view.progress("done", env, _result("a", summary={"drifted": 1}, duration=2.0))
    assert line == "llmgw fleet: a: drift (exit 2, 2.0 s) (1 drifted)"
