"""Nothing reaches the remote for a manifest validation refuses.

Covers: every file of the invalid corpus, planned and applied against an in-process emulator
whose request log must stay empty (not even a token request): the refusal is ManifestError, the
CLI's exit 1, before any client exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import jobs
from reconciler.errors import ManifestError
from tests.test_e2e import Org

CORPUS = Path(__file__).parent / "corpus" / "invalid"
FILES = sorted(CORPUS.glob("*.yaml"))


@pytest.fixture(scope="module")
def org() -> Org:
    return Org()


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
async def test_invalid_manifest_sends_nothing(org: Org, path: Path) -> None:
    target = org.target()
    with pytest.raises(ManifestError):
        await jobs.make_plan(target, [str(path)])
    with pytest.raises(ManifestError):
        await jobs.prepare_apply(target, paths=[str(path)])
    assert org.app.log == [], f"{path.name}: {org.app.log[:3]}"
