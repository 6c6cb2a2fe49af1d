"""End to end: the three jobs and export against the in-process emulator (the real client, the
real app, no network).

Covers: plan -> apply -> verified empty plan, with the request count of a cheap read; a saved
plan re-derived and applied, and refused when stale (manifests, target, an object moved) before
any write; two concurrent applies cannot overwrite each other; apply converging through injected
429/503/dropped connections without duplicating a create; destructive operations refused without
permission; dry run sends no write; drift finding an out-of-band PUT (exit-worthy, with the
field), an ignore entry silencing it for drift, plan and apply until it expires; export of a
populated org giving only adoptions, then an empty plan; scopes (read-only client is enough for
plan/drift, apply names the missing write scope); the audit log's chain after a run.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import audit, jobs, planfile
from reconciler.emulator.app import create_app
from reconciler.emulator.config import ClientSpec, EmulatorConfig
from reconciler.emulator.state import STORE_ID
from reconciler.emulator.transport import in_process_transport
from reconciler.endpoints import PATHS, SCOPES
from reconciler.errors import ConfigError, PlanError, StalePlanError
from reconciler.remote import Settings
from tests.generated import write_org

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
URL = "http://127.0.0.1:8787"


class Org:
    """An in-process emulator and targets pointing at it."""

    def __init__(self, **config: Any) -> None:
        config.setdefault("ingest_delay", 0.0)
        config.setdefault("rate_limit", 0)
        config.setdefault("admin", True)
        self.config = EmulatorConfig(**config)
        self.app = create_app(self.config)

    def target(
        self,
        client: str = "emulator-client",
        secret: str = "emulator-secret",
        environment: str | None = "test",
        parallelism: int = 8,
        **client_options: Any,
    ) -> jobs.Target:
        return jobs.Target(
            Settings(URL, URL, client, secret),
            environment,
            transport=in_process_transport(self.app),
            parallelism=parallelism,
            client_options=client_options,
        )

    async def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(transport=in_process_transport(self.app), base_url=URL) as c:
            tok = await c.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("emulator-client", "emulator-secret"),
            )
            headers = {
                "Authorization": f"Bearer {tok.json()['access_token']}",
                **kw.pop("headers", {}),
            }
            return await c.request(method, path, headers=headers, **kw)

    async def prompt(self, name: str) -> dict[str, Any]:
        page = (
            await self.call("GET", "/api/v2/ai/llm/gateway/prompts", params={"pageSize": 100})
        ).json()
        return next(p for p in page["entities"] if p["name"] == name)

    async def requests_log(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(transport=in_process_transport(self.app), base_url=URL) as c:
            data = (await c.get("/__emulator/requests")).json()
        return data["requests"] if isinstance(data, dict) else data

    async def set_faults(self, **faults: Any) -> None:
        async with httpx.AsyncClient(transport=in_process_transport(self.app), base_url=URL) as c:
            r = await c.put("/__emulator/faults", json=faults)
            assert r.status_code < 300, r.text


async def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def org() -> Org:
    return Org()


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    return tmp_path / "manifests"


def _writes(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        r
        for r in log
        if r["method"] not in ("GET", "HEAD") and not r["path"].startswith(("/oauth", "/__"))
    ]


async def _apply(target: jobs.Target, paths: list[str], tmp: Path, **kw: Any) -> jobs.ApplyRun:
    prepared = await jobs.prepare_apply(
        target,
        paths=paths,
        **{k: v for k, v in kw.items() if k in ("prune", "allow_replace", "ignore_file", "today")},
    )
    return await jobs.execute(target, prepared, audit_path=str(tmp / "audit.jsonl"))


async def test_plan_apply_verify_and_empty_replan(
    org: Org, manifests: Path, tmp_path: Path
) -> None:
    target = org.target()
    first = await jobs.make_plan(target, [str(manifests)])
    counts = first.plan.counts()
    assert counts["create"] == len(first.plan.changes) > 0
    # templates + prompts + models + stores listed once each, indexes per store, no per-object GET
    assert first.requests <= 6
    run = await _apply(target, [str(manifests)], tmp_path)
    assert run.ok, [r.error for r in run.result.results]
    assert run.verify_plan is not None and not run.verify_plan.changes
    assert set(run.index_health.values()) <= {"ACTIVE", "PROCESSING"}
    again = await jobs.make_plan(target, [str(manifests)])
    assert not again.plan.changes
    # versions were listed only for the two templates the manifests name
    assert again.requests <= 4 + 2 + 1
    assert audit.verify(str(tmp_path / "audit.jsonl")).ok


async def test_saved_plan_applied_exactly_and_refused_when_stale(
    org: Org, manifests: Path, tmp_path: Path
) -> None:
    target = org.target()
    await _apply(target, [str(manifests)], tmp_path)
    prompt = manifests / "prompts" / "ticket-triage.yaml"
    prompt.write_text(prompt.read_text().replace("temperature: 0.0", "temperature: 0.4"))
    run = await jobs.make_plan(target, [str(manifests)])
    assert [o.ref for o in run.plan.changes] == ["Prompt/ticket-triage"]
    path = tmp_path / "plan.json"
    planfile.save(run.saved, str(path))
    # someone edits the same prompt in the org after the plan was reviewed
    live = await org.prompt("ticket-triage")
    await org.call("PUT", f"/api/v2/ai/llm/gateway/prompts/{live['id']}", json={"topP": 0.5})
    before = len(_writes(await org.requests_log()))
    with pytest.raises(StalePlanError) as exc:
        await jobs.prepare_apply(target, plan_file=str(path))
    assert "Prompt/ticket-triage" in str(exc.value)
    assert len(_writes(await org.requests_log())) == before
    # manifests edited after the plan: refused too
    run = await jobs.make_plan(target, [str(manifests)])
    planfile.save(run.saved, str(path))
    prompt.write_text(prompt.read_text().replace("temperature: 0.4", "temperature: 0.5"))
    with pytest.raises(StalePlanError, match="manifests changed"):
        await jobs.prepare_apply(target, plan_file=str(path))
    # another target: refused
    prompt.write_text(prompt.read_text().replace("temperature: 0.5", "temperature: 0.4"))
    other = jobs.Target(Settings("http://127.0.0.2:9", "http://127.0.0.2:9", "a", "bbbb"), None)
    with pytest.raises(StalePlanError, match="made for"):
        await jobs.prepare_apply(other, plan_file=str(path))
    prepared = await jobs.prepare_apply(target, plan_file=str(path))
    done = await jobs.execute(target, prepared, audit_path=str(tmp_path / "audit.jsonl"))
    assert done.ok


async def test_concurrent_applies_cannot_overwrite_each_other(
    org: Org, manifests: Path, tmp_path: Path
) -> None:
    target = org.target()
    await _apply(target, [str(manifests)], tmp_path)
    prompt = manifests / "prompts" / "ticket-triage.yaml"
    prompt.write_text(prompt.read_text().replace("temperature: 0.0", "temperature: 0.4"))
    a = await jobs.prepare_apply(target, paths=[str(manifests)])
    b = await jobs.prepare_apply(target, paths=[str(manifests)])
    assert (await jobs.execute(target, a, audit_path=str(tmp_path / "a.jsonl"))).ok
    second = await jobs.execute(target, b, audit_path=str(tmp_path / "b.jsonl"))
    assert not second.ok
    (failed,) = second.result.by_outcome("failed")
    assert failed.stale and "re-run `llmgw plan`" in (failed.error or "")


async def test_apply_converges_through_faults_without_duplicates(
    manifests: Path, tmp_path: Path
) -> None:
    org = Org(seed=7)
    await org.set_faults(rates={"503": 0.1, "429": 0.05, "drop-after": 0.1, "drop-before": 0.05})
    target = org.target(sleep=_no_sleep)
    for _ in range(3):
        run = await _apply(target, [str(manifests)], tmp_path)
        if run.ok:
            break
    assert run.ok, [r.error for r in run.result.results]
    await org.set_faults(rates={})
    log = await org.requests_log()
    creates = [r for r in _writes(log) if r["method"] == "POST" and r["status"] == 201]
    # each create took effect once, whatever the retries and dropped answers
    assert len({(r["path"], r.get("requestId")) for r in creates}) == len(creates)
    again = await jobs.make_plan(target, [str(manifests)])
    assert not again.plan.changes


async def test_destructive_operations_need_permission(
    org: Org, manifests: Path, tmp_path: Path
) -> None:
    target = org.target()
    await _apply(target, [str(manifests)], tmp_path)
    (manifests / "prompts" / "ticket-triage.yaml").unlink()
    without = await jobs.prepare_apply(target, paths=[str(manifests)])
    assert not without.plan.changes and without.plan.orphaned == ("Prompt/ticket-triage",)
    pruning = await jobs.make_plan(target, [str(manifests)], prune=True)
    planfile.save(pruning.saved, str(tmp_path / "prune.json"))
    with pytest.raises(ConfigError, match="--prune"):
        await jobs.prepare_apply(target, plan_file=str(tmp_path / "prune.json"))
    index = manifests / "indexes" / "prod-embedding-index-v2.yaml"
    index.write_text(index.read_text().replace("dimensions: 1536", "dimensions: 768"))
    with pytest.raises(ConfigError, match="--allow-replace"):
        await jobs.prepare_apply(target, paths=[str(manifests)], prune=True)
    prepared = await jobs.prepare_apply(
        target, paths=[str(manifests)], prune=True, allow_replace=True
    )
    assert {o.action.value for o in prepared.plan.changes} == {"delete", "replace"}
    run = await jobs.execute(target, prepared, audit_path=str(tmp_path / "audit.jsonl"))
    assert run.ok, [r.error for r in run.result.results]
    path = PATHS.index.format(vectorStoreId=STORE_ID, indexId="prod-embedding-index-v2")
    live = await org.call("GET", path)
    assert live.status_code == 200, live.text
    assert live.json()["dimensions"] == 768


async def test_changed_immutable_version_field_is_an_error_naming_the_fix(
    org: Org, manifests: Path, tmp_path: Path
) -> None:
    target = org.target()
    await _apply(target, [str(manifests)], tmp_path)
    before = len(_writes(await org.requests_log()))
    path = manifests / "templates" / "support-ticket-classifier.yaml"
    path.write_text(path.read_text().replace("Answer with billing", "Reply with billing"))
    with pytest.raises(PlanError) as err:
        await jobs.make_plan(target, [str(manifests)])
    assert "support-ticket-classifier@1.0.0" in str(err.value)
    assert "publish a new version" in str(err.value)
    with pytest.raises(PlanError):
        await jobs.prepare_apply(target, paths=[str(manifests)])
    assert len(_writes(await org.requests_log())) == before


async def test_plan_request_count_follows_the_formula(tmp_path: Path) -> None:
    """T/100 + (templates with versions) + P/100 + I/100 + 1 (models), within 10%."""
    org = Org()
    write_org(tmp_path / "gen", 180)
    target = org.target()
    run = await _apply(target, [str(tmp_path / "gen")], tmp_path)
    assert run.ok
    again = await jobs.make_plan(target, [str(tmp_path / "gen")])
    assert not again.plan.changes
    t = p = i = 180
    formula = -(-t // 100) + t + -(-p // 100) + -(-i // 100) + 1
    assert abs(again.requests - formula) <= 0.1 * formula, (again.requests, formula)


async def test_dry_run_sends_no_write(org: Org, manifests: Path) -> None:
    target = org.target()
    prepared = await jobs.prepare_apply(target, paths=[str(manifests)])
    requests = jobs.dry_run_requests(prepared.plan)
    assert requests and requests[0]["method"] == "POST"
    assert not _writes(await org.requests_log())


async def test_drift_ignore_and_expiry(org: Org, manifests: Path, tmp_path: Path) -> None:
    target = org.target()
    await _apply(target, [str(manifests)], tmp_path)
    clean = await jobs.detect_drift(target, [str(manifests)])
    assert clean.report.in_sync
    live = await org.prompt("support-agent")
    await org.call("PUT", f"/api/v2/ai/llm/gateway/prompts/{live['id']}", json={"temperature": 1.3})
    drifted = await jobs.detect_drift(target, [str(manifests)])
    (finding,) = drifted.report.drifted
    assert finding.ref == "Prompt/support-agent"
    assert [d.path for d in finding.diff] == ["temperature"]
    ignore = tmp_path / "ignore.yaml"
    ignore.write_text(
        "ignore:\n"
        "  - identity: Prompt/support-agent\n"
        "    field: temperature\n"
        "    reason: incident 4411, tuning live\n"
        "    expires: 2026-12-31\n"
    )
    today = dt.date(2026, 11, 22)
    quiet = await jobs.detect_drift(target, [str(manifests)], ignore_file=str(ignore), today=today)
    assert quiet.report.in_sync
    plan = await jobs.make_plan(target, [str(manifests)], ignore_file=str(ignore), today=today)
    assert not plan.plan.changes
    later = dt.date(2027, 1, 1)
    loud = await jobs.detect_drift(target, [str(manifests)], ignore_file=str(ignore), today=later)
    assert not loud.report.in_sync and loud.desired.ignores.expired
    healed = await _apply(target, [str(manifests)], tmp_path, ignore_file=str(ignore), today=later)
    assert healed.ok
    assert (await org.prompt("support-agent"))["temperature"] == pytest.approx(0.3, abs=1)


async def test_export_then_adopt_then_empty_plan(org: Org, manifests: Path, tmp_path: Path) -> None:
    # a populated org that llmgw never managed: objects without the management label
    target = org.target()
    await _apply(target, [str(manifests)], tmp_path)
    for p in (
        await org.call("GET", "/api/v2/ai/llm/gateway/prompts", params={"pageSize": 100})
    ).json()["entities"]:
        await org.call("PUT", f"/api/v2/ai/llm/gateway/prompts/{p['id']}", json={"labels": {}})
    out = tmp_path / "exported"
    exported = await jobs.export_org(target, str(out))
    assert exported.written
    with pytest.raises(ConfigError, match="--force"):
        await jobs.export_org(target, str(out))
    plan = await jobs.make_plan(target, [str(out)])
    assert plan.plan.changes and {o.action.value for o in plan.plan.changes} == {"adopt"}
    assert (await _apply(target, [str(out)], tmp_path)).ok
    assert not (await jobs.make_plan(target, [str(out)])).plan.changes


async def test_read_scopes_suffice_for_plan_and_drift_but_not_apply(
    manifests: Path, tmp_path: Path
) -> None:
    org = Org(clients=[ClientSpec("reader", "reader-secret", frozenset(SCOPES.read))])
    target = org.target("reader", "reader-secret")
    plan = await jobs.make_plan(target, [str(manifests)])
    assert plan.plan.changes
    assert not (await jobs.detect_drift(target, [str(manifests)])).report.in_sync
    prepared = await jobs.prepare_apply(target, paths=[str(manifests)])
    run = await jobs.execute(target, prepared, audit_path=str(tmp_path / "audit.jsonl"))
    assert not run.ok
    errors = " ".join(r.error or "" for r in run.result.results)
    assert SCOPES.template_write in errors or SCOPES.store_write in errors


async def test_change_a_split_then_withdraw_a_version(
    org: Org, manifests: Path, tmp_path: Path
) -> None:
    target = org.target()
    assert (await _apply(target, [str(manifests)], tmp_path)).ok
    prompt = manifests / "prompts" / "support-agent.yaml"
    text = prompt.read_text()
    prompt.write_text(
        text.replace("weight: 0.8}", "weight: 0.5}").replace("weight: 0.2}", "weight: 0.5}")
    )
    run = await _apply(target, [str(manifests)], tmp_path)
    assert run.ok and [r.op.ref for r in run.result.results] == ["TrafficSplit/support-agent"]
    live = await org.prompt("support-agent")
    assert [v["weight"] for v in live["trafficDistribution"]["versions"]] == [0.5, 0.5]
    # move all traffic to 2.1.0 and withdraw 2.0.0 in the same apply: the split moves first
    prompt.write_text(
        text.replace('    - {version: "2.0.0", weight: 0.8}\n', "").replace(
            "weight: 0.2}", "weight: 1.0}"
        )
    )
    versions = manifests / "templates" / "escalation-routing.yaml"
    versions.write_text(
        versions.read_text().replace(
            '  version: "2.0.0"\n', '  version: "2.0.0"\n  rollbackDirective: true\n'
        )
    )
    run = await _apply(target, [str(manifests)], tmp_path)
    assert run.ok, [r.error for r in run.result.results]
    assert not (await jobs.make_plan(target, [str(manifests)])).plan.changes
    tid = live["templateId"]
    v = await org.call("GET", f"/api/v2/ai/prompt-templates/{tid}/versions/2.0.0")
    assert v.json()["rollbackDirective"] is True and v.json()["status"] == "WITHDRAWN"
    assert audit.verify(str(tmp_path / "audit.jsonl")).ok


async def test_thousand_objects_through_faults_in_one_run(tmp_path: Path) -> None:
    org = Org(seed=11)
    await org.set_faults(rates={"429": 0.10, "503": 0.05, "drop-after": 0.02})
    write_org(tmp_path / "gen", 250)
    target = org.target(sleep=_no_sleep)
    run = await _apply(target, [str(tmp_path / "gen")], tmp_path)
    assert run.ok, [r.error for r in run.result.results if r.error][:3]
    assert len(run.result.results) == 1000
    await org.set_faults(rates={})
    assert not (await jobs.make_plan(target, [str(tmp_path / "gen")])).plan.changes
    g = org.app.gateway
    assert len(g.templates) == 250 and len(g.prompts) == 250
    assert sum(len(v) for v in g.versions.values()) == 250
    assert audit.verify(str(tmp_path / "audit.jsonl")).ok


async def test_one_token_per_run_and_a_stopped_run_sends_nothing_more(
    org: Org, manifests: Path, tmp_path: Path
) -> None:
    """apply reads with one client and writes with another: both use the run's one token (the
    contract: minting tokens is abuse, not pacing). And a request the client holds while the
    run stops is never put on the wire (``may_send``)."""
    from reconciler.errors import RunStopped

    target = org.target()
    run = await _apply(target, [str(manifests)], tmp_path)
    assert run.ok
    tokens = [r for r in org.app.log if r["path"] == "/oauth/token"]
    assert len(tokens) == 1, tokens
    before = len(org.app.log)
    async with target.client(read_only=True) as client:
        with pytest.raises(RunStopped):
            await client.request("GET", PATHS.templates, may_send=lambda: False)
        assert client.requests_sent == 0
    assert len(org.app.log) == before  # nothing new reached the org, not even a token request
