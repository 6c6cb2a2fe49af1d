"""Benchmark: `llmgw plan` on a large org, against a per-object refresh, and under the rate limit.

Issue 4's scenarios, each run as real processes on loopback (the emulator from `llmgw emulator
serve --state`, the planner as `llmgw plan`), so that wall time, CPU time and peak memory are the
client's own, measured by the kernel (``os.wait4``):

1. **Large org, no change**: 2,000 templates x 3 versions, 2,000 prompts each with a traffic split
   over two of its template's versions, 200 vector indexes (12,200 objects), emulator latency
   20 ms, rate limit lifted, `--parallelism 8`. Beside it, the baseline the listing design is
   measured against: the same plan (validate, read, plan, in a process of its own) with the
   live read done the way a per-resource refresh works (Terraform's): one GET per manifest
   object whose id it already holds (so no listing at all; a traffic split, its own resource
   there, GETs its prompt), at the same parallelism. Both must find no change. Targets: at
   least 4x fewer requests and 4x less wall time than the baseline; no-change plan CPU under
   1 ms per object. The planner's own CPU (normalise, diff, order: the pure function) is
   measured separately in-process.
2. **Rate-limited**: 500 templates x 3 versions, 500 prompts with splits, 50 indexes, at the
   gateway's default 300 requests a minute per token (fixed 60 s windows). Target: zero 429s,
   and wall time within 15% of the minimum the rate window allows, which is
   ``floor((N - 1) / 300) x 60 s`` for N requests (everything past the first 300 has to wait for
   the next window). The ratio is reported.

Seeding (not measured) applies the generated manifests to an in-process emulator once with
llmgw itself and saves its state; each measured run starts a fresh emulator from that file.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from reconciler import jobs
from reconciler.emulator.app import create_app
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.transport import in_process_transport
from reconciler.endpoints import FIELDS, PATHS
from reconciler.gateway import GatewayReader
from reconciler.live import read_live
from reconciler.planner import plan
from reconciler.remote import GatewayClient, Settings

BIN = Path(sys.executable).parent
LLMGW = str(BIN / "llmgw")  # the console script, for the emulator
STORE = "6d1f2c1e-0b7a-4a55-9d1e-3f3f8a2b9c10"
CLIENT = {
    "GENESYS_CLOUD_CLIENT_ID": "emulator-client",
    "GENESYS_CLOUD_CLIENT_SECRET": "emulator-secret",
}
PARALLELISM = 8
LATENCY_MS = 20
RATE = 300
WINDOW_S = 60.0
LARGE = (2000, 3, 2000, 200)  # templates, versions per template, prompts, indexes
RATED = (500, 3, 500, 50)


# -- the generated org -------------------------------------------------------------------------
def write_org(root: Path, templates: int, versions: int, prompts: int, indexes: int) -> int:
    """Manifests for a generated org, 100 templates or prompts to a file; returns the object
    count (templates + versions + prompts + splits + indexes)."""
    for sub in ("templates", "prompts", "indexes"):
        (root / sub).mkdir(parents=True)
    for start in range(0, templates, 100):
        docs = []
        for i in range(start, min(start + 100, templates)):
            t = f"bench-template-{i:05d}"
            docs.append(
                f"apiVersion: llmgw/v1\nkind: PromptTemplate\nmetadata: {{name: {t}}}\n"
                f"spec:\n  description: Generated template {i}\n"
                "  systemInstruction: Answer in one short paragraph.\n"
                '  userTemplate: "Customer asks: {{question}} (tier {{tier}})"\n'
                "  variables: [question, tier]\n"
            )
            for v in range(versions):
                docs.append(
                    f"apiVersion: llmgw/v1\nkind: PromptVersion\n"
                    f"metadata: {{name: {t}@1.{v}.0}}\n"
                    f'spec:\n  template: {t}\n  version: "1.{v}.0"\n'
                    f'  content: "Revision {v}: answer {{{{question}}}}'
                    ' for a {{tier}} customer."\n'
                    "  variables: {question: string, tier: string}\n"
                    "  metadata: {author: bench}\n"
                )
        (root / "templates" / f"batch-{start // 100:03d}.yaml").write_text("---\n".join(docs))
    for start in range(0, prompts, 100):
        docs = []
        for i in range(start, min(start + 100, prompts)):
            t = f"bench-template-{i % templates:05d}"
            p = f"bench-prompt-{i:05d}"
            docs.append(
                f"apiVersion: llmgw/v1\nkind: Prompt\nmetadata: {{name: {p}, labels: {{team: "
                f"bench}}}}\nspec:\n  template: {t}\n  model: model-gen-4\n"
                "  fallbackModels: [model-fallback-3]\n  systemPrompt: You help customers.\n"
                "  temperature: 0.2\n  maxTokens: 512\n"
            )
            docs.append(
                f"apiVersion: llmgw/v1\nkind: TrafficSplit\nmetadata: {{name: {p}}}\n"
                f"spec:\n  prompt: {p}\n  strategy: random\n  versions:\n"
                '    - {version: "1.0.0", weight: 0.9}\n'
                f'    - {{version: "1.{versions - 1}.0", weight: 0.1}}\n'
            )
        (root / "prompts" / f"batch-{start // 100:03d}.yaml").write_text("---\n".join(docs))
    docs = [
        f"apiVersion: llmgw/v1\nkind: VectorIndex\nmetadata: {{name: bench-index-{i:04d}}}\n"
        f"spec:\n  vectorStore: {STORE}\n  dimensions: 1536\n  similarityMetric: cosine\n"
        "  embeddingFormat: float32\n"
        for i in range(indexes)
    ]
    (root / "indexes" / "indexes.yaml").write_text("---\n".join(docs))
    return templates * (1 + versions) + 2 * prompts + indexes


URL = "http://127.0.0.1:8787"


def _target(app: Any) -> jobs.Target:
    settings = Settings(URL, URL, CLIENT["GENESYS_CLOUD_CLIENT_ID"], "emulator-secret")
    return jobs.Target(settings, None, transport=in_process_transport(app), parallelism=16)


async def seed(manifests: Path, state: Path, work: Path) -> None:
    """Apply the manifests to an empty in-process emulator with llmgw, save the org."""
    app = create_app(EmulatorConfig(rate_limit=0, ingest_delay=0.0, seed=7))
    target = _target(app)
    prepared = await jobs.prepare_apply(target, paths=[str(manifests)])
    run = await jobs.execute(target, prepared, audit_path=str(work / "seed-audit.jsonl"))
    if not run.ok:
        raise SystemExit(f"bench: seeding failed: {[r.error for r in run.result.results][:3]}")
    state.write_text(json.dumps(app.emulator.gateway.snapshot()))


# -- measured processes ------------------------------------------------------------------------
class Emulator:
    """`llmgw emulator serve` in a child process, from a copy of a state file."""

    def __init__(self, state: Path, work: Path, *args: str) -> None:
        copy = work / f"state-{time.monotonic_ns()}.json"
        shutil.copy(state, copy)
        self.proc = subprocess.Popen(
            [LLMGW, "emulator", "serve", "--port", "0", "--state", str(copy), "--admin", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.proc.kill()
            raise SystemExit(f"bench: the emulator did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[1].strip()

    def log(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = httpx.get(f"{self.url}/__emulator/requests").json()["requests"]
        return [r for r in rows if not str(r.get("path", "")).startswith("/__emulator")]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


# The child reports its own peak RSS: the kernel's figure for a child (wait4's ru_maxrss) starts
# from the parent's high-water mark at fork, and this parent holds a seeded org.
_WRAP = """
import atexit, os, runpy, sys
def report():
    with open('/proc/self/status') as f:
        kb = next(line.split()[1] for line in f if line.startswith('VmHWM:'))
    with open(os.environ['BENCH_HWM'], 'w') as f:
        f.write(kb)
atexit.register(report)
target, sys.argv = sys.argv[1], sys.argv[1:]
if target == 'llmgw':
    from reconciler.cli import main
    main()
else:
    runpy.run_path(target, run_name='__main__')
"""


def run_child(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd`` (``llmgw ARGS`` or ``SCRIPT ARGS``): wall time, the kernel's CPU time of
    exactly this child, and its peak RSS."""
    with tempfile.NamedTemporaryFile(prefix="bench-hwm-") as hwm:
        env = {**env, "BENCH_HWM": hwm.name}
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRAP, *cmd],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        out = proc.stdout.read()  # small: a no-change plan, a count
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss_kb = int(Path(hwm.name).read_text() or 0)
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": rss_kb / 1024,
        "rc": proc.returncode,
        "out": out.decode(),
        "err": err.decode(),
    }


def _env(url: str) -> dict[str, str]:
    return {**os.environ, **CLIENT, "GENESYS_CLOUD_API_URL": url, "NO_COLOR": "1"}


def _requests_from_plan(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("Read the org in "):
            return int(line.split()[4].replace(",", ""))
    raise SystemExit(f"bench: no request count in the plan output:\n{text[-2000:]}")


def plan_cmd(manifests: Path) -> list[str]:
    return ["llmgw", "plan", str(manifests), "--parallelism", str(PARALLELISM), "--no-color"]


# -- the baseline: the same plan, read one GET per object, ids known ----------------------------
def object_ids(state: Path) -> dict[str, Any]:
    """What a per-resource tool keeps in its state: the id of every object."""
    data = json.loads(state.read_text())
    return {
        "templates": list(data["templates"]),
        "versions": {tid: list(v) for tid, v in data["versions"].items()},
        "prompts": list(data["prompts"]),
        # a traffic split is its own resource there, and its read GETs the prompt it belongs to
        "splits": [pid for pid, p in data["prompts"].items() if p.get(FIELDS.prompt.traffic)],
        "indexes": {store: list(ix) for store, ix in data["indexes"].items()},
    }


class PerObjectReader:
    """``kinds.base.Reader`` the way a per-resource refresh reads: each collection a kind lists
    is answered by one GET per object of it whose id the refresh already holds. The models and
    vector stores are listed, as plan does."""

    def __init__(self, client: GatewayClient, ids: dict[str, Any]) -> None:
        self.client = client
        prompts = [PATHS.prompt.format(promptId=p) for p in ids["prompts"] + ids["splits"]]
        self.objects: dict[str, list[str]] = {
            PATHS.templates: [PATHS.template.format(templateId=t) for t in ids["templates"]],
            PATHS.prompts: prompts,
        }
        for tid, versions in ids["versions"].items():
            self.objects[PATHS.versions.format(templateId=tid)] = [
                PATHS.version.format(templateId=tid, version=v) for v in versions
            ]
        for store, indexes in ids["indexes"].items():
            self.objects[PATHS.indexes.format(vectorStoreId=store)] = [
                PATHS.index.format(vectorStoreId=store, indexId=i) for i in indexes
            ]

    @property
    def window(self) -> int:
        return self.client.parallelism

    async def list(self, path: str) -> list[dict[str, Any]]:
        if path in (PATHS.models, PATHS.vector_stores):
            listed: list[dict[str, Any]] = await self.client.list_pages(path)
            return listed
        paths = self.objects.get(path, [])
        answers = await asyncio.gather(*(self.client.request("GET", p) for p in paths))
        # a prompt's split is read by its own GET, as a per-resource refresh does; the prompt
        # itself is listed once
        seen: dict[str, dict[str, Any]] = {}
        for a in answers:
            seen.setdefault(str(a.body.get(FIELDS.id, id(a))), a.body)
        return list(seen.values())


async def baseline(manifests: str, ids_file: str) -> None:
    """Child process: what `llmgw plan` does (validate, read, plan), with the read done by
    ``PerObjectReader`` at the same parallelism; prints the request count and the changes."""
    url = os.environ["GENESYS_CLOUD_API_URL"]
    settings = Settings(url, url, CLIENT["GENESYS_CLOUD_CLIENT_ID"], "emulator-secret")
    ids = json.loads(Path(ids_file).read_text())
    desired = jobs.load_desired([manifests])
    async with GatewayClient(settings, parallelism=PARALLELISM, read_only=True) as client:
        live = await read_live(PerObjectReader(client, ids), desired.objects.values())
    result = plan(desired.objects, live)
    print(json.dumps({"requests": client.requests_sent, "changes": len(result.changes)}))


# -- the pure planner's own CPU ----------------------------------------------------------------
async def planner_cpu(manifests: Path, state: Path) -> dict[str, float]:
    """CPU seconds of validating and loading the manifests, and of the pure plan function,
    with the live read done against an in-process emulator (not counted)."""
    c0 = time.process_time()
    desired = jobs.load_desired([str(manifests)])
    load_cpu = time.process_time() - c0
    app = create_app(EmulatorConfig(rate_limit=0, ingest_delay=0.0))
    app.emulator.restore(json.loads(state.read_text()))
    target = _target(app)
    async with target.client(read_only=True) as client:
        live = await read_live(GatewayReader(client), desired.objects.values())
    best = float("inf")
    for _ in range(3):
        c0 = time.process_time()
        result = plan(desired.objects, live)
        best = min(best, time.process_time() - c0)
    if result.changes:
        raise SystemExit(f"bench: expected no change, got {len(result.changes)}")
    return {"load": load_cpu, "plan": best}


# -- scenarios ---------------------------------------------------------------------------------
def prepare(work: Path, name: str, sizes: tuple[int, int, int, int]) -> tuple[Path, Path, int, str]:
    """Write the org's manifests and seed an emulator state with them: (manifests, state file,
    object count, the org in words)."""
    t, v, p, i = sizes
    manifests = work / name
    objects = write_org(manifests, t, v, p, i)
    state = work / f"{name}-state.json"
    asyncio.run(seed(manifests, state, work))
    org = f"{t} templates x {v} versions, {p} prompts with splits, {i} indexes ({objects} objects)"
    return manifests, state, objects, org


def run_against(
    state: Path, work: Path, cmd: list[str], rate_limit: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``cmd`` (see ``run_child``) against a fresh emulator started from ``state``, with
    the bench's latency and ``rate_limit``; its result and the emulator's request log."""
    emu = Emulator(state, work, "--latency-ms", str(LATENCY_MS), "--rate-limit", str(rate_limit))
    try:
        return run_child(cmd, _env(emu.url)), emu.log()
    finally:
        emu.stop()


def large(work: Path) -> list[dict[str, Any]]:
    t, _, p, i = LARGE
    manifests, state, objects, org = prepare(work, "large", LARGE)
    ids_file = work / "large-ids.json"
    ids_file.write_text(json.dumps(object_ids(state)))

    ours, _ = run_against(state, work, plan_cmd(manifests), rate_limit=0)
    if ours["rc"] != 0 or "No changes" not in ours["out"]:
        raise SystemExit(f"bench: plan failed ({ours['rc']}):\n{ours['out'][-2000:]}{ours['err']}")
    ours_requests = _requests_from_plan(ours["out"])
    formula = -(-t // 100) + t + -(-p // 100) + -(-i // 100) + 1

    base, _ = run_against(
        state, work, [__file__, "--baseline", str(manifests), str(ids_file)], rate_limit=0
    )
    if base["rc"] != 0:
        raise SystemExit(f"bench: baseline failed:\n{base['err'][-2000:]}")
    base_result = json.loads(base["out"])
    if base_result["changes"]:
        raise SystemExit(f"bench: the baseline planned {base_result['changes']} changes")
    base_requests = base_result["requests"]

    targeted, targeted_requests = _targeted(manifests, state, work)
    cpu = asyncio.run(planner_cpu(manifests, state))
    common = {"org": org, "emulator": f"latency {LATENCY_MS} ms, no rate limit"}
    return [
        {
            "benchmark": "plan a large org, no change: llmgw plan vs one GET per object",
            **common,
            "parallelism": PARALLELISM,
            "llmgw plan: requests": ours_requests,
            "llmgw plan: requests by the formula T/100 + T + P/100 + I/100 + 1": formula,
            "llmgw plan: wall s": round(ours["wall"], 2),
            "llmgw plan: CPU s (whole process)": round(ours["cpu"], 2),
            "llmgw plan: CPU ms per object (whole process)": round(1000 * ours["cpu"] / objects, 3),
            "llmgw plan: peak RSS MB": round(ours["rss_mb"], 1),
            "baseline (same plan, one GET per object): requests": base_requests,
            "baseline (same plan, one GET per object): wall s": round(base["wall"], 2),
            "baseline (same plan, one GET per object): CPU s": round(base["cpu"], 2),
            "baseline (same plan, one GET per object): peak RSS MB": round(base["rss_mb"], 1),
            "fewer requests (target >= 4x)": f"{base_requests / ours_requests:.1f}x",
            "less wall time (target >= 4x)": f"{base['wall'] / ours['wall']:.1f}x",
            "validate + load CPU ms per object": round(1000 * cpu["load"] / objects, 3),
            "pure planner CPU ms per object (target < 1)": round(1000 * cpu["plan"] / objects, 4),
        },
        {
            "benchmark": "targeted plan: one template edited, `plan --changed-since HEAD`",
            **common,
            "change": "one template's description (its 3 versions untouched)",
            "requests (target <= 50)": targeted_requests,
            "wall s": round(targeted["wall"], 2),
            "full plan of the same org: requests, wall s": f"{ours_requests}, {ours['wall']:.2f}",
            "fewer requests": f"{ours_requests / targeted_requests:.0f}x",
            "CPU s (whole process)": round(targeted["cpu"], 2),
        },
    ]


def _targeted(manifests: Path, state: Path, work: Path) -> tuple[dict[str, Any], int]:
    """Commit the org's manifests, edit one template, and time `plan --changed-since HEAD`."""
    git = ["git", "-c", "user.email=bench@llmgw", "-c", "user.name=bench"]
    subprocess.run([*git, "init", "-q"], cwd=manifests, check=True)
    subprocess.run([*git, "add", "-A"], cwd=manifests, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "org"], cwd=manifests, check=True)
    first = sorted((manifests / "templates").glob("*.yaml"))[0]
    text = first.read_text()
    first.write_text(text.replace("Generated template 0\n", "Generated template 0, edited\n", 1))
    cmd = [*plan_cmd(manifests), "--changed-since", "HEAD"]
    result, _ = run_against(state, work, cmd, rate_limit=0)
    if result["rc"] != 0 or "1 to update" not in result["out"]:
        raise SystemExit(f"bench: targeted plan failed:\n{result['out'][-2000:]}{result['err']}")
    first.write_text(text)
    return result, _requests_from_plan(result["out"])


def rate_limited(work: Path) -> list[dict[str, Any]]:
    manifests, state, _, org = prepare(work, "rate", RATED)
    ours, log = run_against(state, work, plan_cmd(manifests), rate_limit=RATE)
    if ours["rc"] != 0:
        raise SystemExit(f"bench: plan failed ({ours['rc']}):\n{ours['out'][-2000:]}{ours['err']}")
    api = [r for r in log if not str(r.get("path", "")).startswith("/oauth")]
    n = len(api)
    limited = sum(1 for r in api if r.get("status") == 429)
    floor_s = ((n - 1) // RATE) * WINDOW_S
    return [
        {
            "benchmark": f"plan at the default rate limit ({RATE} requests a minute)",
            "org": org,
            "emulator": f"latency {LATENCY_MS} ms, {RATE} requests per 60 s window",
            "API requests (emulator log)": n,
            "429 answers (target 0)": limited,
            "rate-window minimum s": floor_s,
            "llmgw plan: wall s": round(ours["wall"], 2),
            "wall / minimum (target <= 1.15)": round(ours["wall"] / floor_s, 3)
            if floor_s
            else "n/a (fits one window)",
            "llmgw plan: CPU s": round(ours["cpu"], 2),
        }
    ]


def main() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="llmgw-bench-") as tmp:
        work = Path(tmp)
        return large(work) + rate_limited(work)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--baseline":
        gc.set_threshold(50_000, 20, 20)  # as `llmgw` itself runs
        asyncio.run(baseline(sys.argv[2], sys.argv[3]))
    else:
        for row in main():
            print(json.dumps(row))
