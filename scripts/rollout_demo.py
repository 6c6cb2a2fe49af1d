"""The demo's rollout helpers: write a rollout into a copy of the manifests, and drive the
emulator's traffic and clock (its test-only endpoints: `llmgw emulator serve --admin`).

Usage:
  python scripts/rollout_demo.py manifests SRC DST FROM TO [NEW_VERSION]
      copy SRC to DST with support-agent's split rolling out from FROM to TO (and, with
      NEW_VERSION, a new PromptVersion of escalation-routing, a copy of 2.1.0)
  python scripts/rollout_demo.py traffic VERSION=ERROR_RATE...
      600 invocations a minute on support-agent, each version with its error rate
  python scripts/rollout_demo.py clock MINUTES
      move the emulator's clock forward (and make the traffic of that time)
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import httpx

ROLLOUT = """  rollout:
    from: "{stable}"
    steps: [0.05, 0.25, 0.5]
    interval: 30m
    minInvocations: 500
    maxWait: 6h
    gates:
      errorRate: {{maxIncrease: 0.02}}
      latencyP95Ms: {{maxRatio: 1.25}}
    withdrawOnRollback: true
"""


def manifests(src: str, dst: str, stable: str, canary: str, new: str | None = None) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    split = Path(dst, "prompts", "support-agent.yaml")
    text = split.read_text()
    head = text[: text.index("kind: TrafficSplit")]
    split.write_text(
        head
        + "kind: TrafficSplit\nmetadata:\n  name: support-agent\nspec:\n  prompt: support-agent\n"
        + f'  defaultVersion: "{canary}"\n'
        + ROLLOUT.format(stable=stable)
    )
    if new:
        template = Path(dst, "templates", "escalation-routing.yaml")
        text = template.read_text()
        start = text.index("kind: PromptVersion\nmetadata:\n  name: escalation-routing@2.1.0")
        doc = text[start:].split("\n---", 1)[0]
        doc = doc.replace("2.1.0", new)
        template.write_text(text.rstrip("\n") + "\n---\napiVersion: llmgw/v1\n" + doc + "\n")
    print(f"{dst}: support-agent rolls out from {stable} to {canary}")


def admin(method: str, path: str, body: object) -> None:
    api = os.environ["GENESYS_CLOUD_API_URL"].rstrip("/")
    resp = httpx.request(method, f"{api}/__emulator/{path}", json=body, timeout=30)
    resp.raise_for_status()


def main() -> int:
    what, args = sys.argv[1], sys.argv[2:]
    if what == "manifests":
        manifests(*args)
    elif what == "traffic":
        versions = {v: {"errorRate": float(r)} for v, r in (a.split("=") for a in args)}
        body = {"prompts": {"support-agent": {"perMinute": 600, "versions": versions}}}
        admin("PUT", "traffic", body)
        print("emulator traffic: 600 a minute on support-agent, error rates " + ", ".join(args))
    elif what == "clock":
        admin("POST", "clock", {"advanceSeconds": float(args[0]) * 60})
        print(f"emulator clock: {args[0]} minutes later")
    else:
        print(__doc__, file=sys.stderr)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main())
