"""The example manifests with support-agent's split rolling out from 2.0.0 to 2.1.0, for the
rollout tests (one copy of the block, each test choosing its gates)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GATES = """    gates:
      errorRate: {maxIncrease: 0.02}
"""
BLOCK = """  rollout:
    from: "2.0.0"
    steps: [0.05, 0.25, 0.5]
    interval: 30m
    minInvocations: 500
    maxWait: 6h
{gates}    withdrawOnRollback: true
"""


def rollout_manifests(
    tmp: Path, gates: str = GATES, end: str = '  defaultVersion: "2.1.0"\n'
) -> Path:
    """A copy of manifests/ in ``tmp/m`` whose support-agent split ends at ``end``."""
    out = tmp / "m"
    shutil.copytree(REPO / "manifests", out)
    f = out / "prompts" / "support-agent.yaml"
    text = f.read_text()
    f.write_text(text[: text.index("  strategy: random")] + end + BLOCK.format(gates=gates))
    return out
