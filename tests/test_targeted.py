"""Targeted plans (`plan --changed-since REF`): cost grows with the change, not the org.

Covers: a property test over random edits of a generated org (templates, versions, prompts,
splits and indexes in one file, the org applied at REF): the targeted plan equals the full plan
restricted to the touched objects, operation for operation and request for request, reading
fewer requests; removed documents are reported, never deleted; a saved targeted plan records
REF and its set, is applied on that set (and verified on it), and is refused when the
manifests moved; the refusals (`--prune`, REF not a commit, not a git checkout, a saved plan
with --changed-since) are clear, with nothing sent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import jobs, planfile
from reconciler.cli import cli
from reconciler.errors import ConfigError, PlanError, StalePlanError
from tests.generated import write_org
from tests.test_e2e import Org

N = 12
VERSIONS = ("1.0.0", "1.1.0")
GIT = ["git", "-c", "user.email=t@llmgw", "-c", "user.name=t"]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class World:
    """One generated org in a git repository, applied to an in-process emulator at HEAD."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="llmgw-targeted-"))
        self.repo = self.tmp / "repo"
        write_org(self.repo, N, versions=VERSIONS, split=True)
        git(self.repo, "init", "-q")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", "org")
        self.org = Org()
        prepared = run(jobs.prepare_apply(self.org.target(), paths=[str(self.repo)]))
        done = run(jobs.execute(self.org.target(), prepared, audit_path=str(self.tmp / "a.jsonl")))
        assert done.ok
        self.file = self.repo / "org.yaml"
        self.original = self.file.read_text()

    def reset(self) -> None:
        self.file.write_text(self.original)
        for extra in self.repo.glob("extra-*.yaml"):
            extra.unlink()


_WORLD: list[World] = []


def world() -> World:
    if not _WORLD:
        _WORLD.append(World())
    return _WORLD[0]


def edit(docs: list[dict[str, Any]], kind: str, index: int, how: int) -> None:
    """One mutable change to the ``index``-th document of ``kind`` (or its removal)."""
    mine = [d for d in docs if d["kind"] == kind]
    doc = mine[index % len(mine)]
    if how == 0 and kind in ("TrafficSplit", "VectorIndex"):
        docs.remove(doc)  # removed by the change
        return
    if kind == "PromptTemplate":
        doc["spec"]["systemInstruction"] = f"Be brief ({how})."
    elif kind == "PromptVersion":
        doc["metadata"].setdefault("labels", {})["reviewed"] = str(how)
    elif kind == "Prompt":
        doc["spec"]["temperature"] = round(0.1 * (how % 10), 1)
    elif kind == "TrafficSplit":
        first, second = doc["spec"]["versions"]
        first["weight"], second["weight"] = 0.25, 0.75
    elif kind == "VectorIndex":
        doc["metadata"].setdefault("labels", {})["tier"] = str(how)


KINDS = ("PromptTemplate", "PromptVersion", "Prompt", "TrafficSplit", "VectorIndex")
edits = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 3 * N), st.integers(0, 5)),
    min_size=1,
    max_size=4,
)


def _ops(result: Any, refs: set[str]) -> dict[str, Any]:
    return {
        op.ref: planfile.operation_dict(op)
        for op in result.plan.operations
        if op.ref in refs or set(op.covers) & refs
    }


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=edits, new_template=st.booleans())
def test_a_targeted_plan_is_the_full_plan_restricted_to_the_change(
    changes: list[tuple[str, int, int]], new_template: bool
) -> None:
    w = world()
    try:
        docs = list(yaml.safe_load_all(w.original))
        for kind, index, how in changes:
            edit(docs, kind, index, how)
        w.file.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        if new_template:
            (w.repo / "extra-new.yaml").write_text(
                "apiVersion: llmgw/v1\nkind: PromptTemplate\nmetadata: {name: added-template}\n"
                'spec:\n  systemInstruction: New.\n  userTemplate: "Q: {{q}}"\n'
                "  variables: [q]\n"
            )
        target = w.org.target()
        full = run(jobs.make_plan(target, [str(w.repo)]))
        targeted = run(jobs.make_plan(target, [str(w.repo)], changed_since="HEAD"))
        t = targeted.saved.targeted
        assert t is not None and t.commit == git(w.repo, "rev-parse", "HEAD").strip()
        touched = set(t.objects)
        # every change of the full plan is the change's, and the targeted plan has each one
        assert {op.ref for op in full.plan.changes} <= touched | set(t.removed)
        assert _ops(targeted, touched) == _ops(full, touched)
        assert set(targeted.plan.orphaned) == set(full.plan.orphaned) & set(t.removed)
        assert targeted.requests < full.requests
    finally:
        w.reset()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, Org]:
    w = tmp_path / "repo"
    write_org(w, 4, versions=VERSIONS, split=True)
    git(w, "init", "-q")
    git(w, "add", "-A")
    git(w, "commit", "-q", "-m", "org")
    org = Org()
    prepared = run(jobs.prepare_apply(org.target(), paths=[str(w)]))
    assert run(jobs.execute(org.target(), prepared, audit_path=str(tmp_path / "a.jsonl"))).ok
    return w, org


def _one_edit(repo: Path) -> None:
    f = repo / "org.yaml"
    f.write_text(f.read_text().replace("Be brief.", "Be very brief.", 1))


def test_a_saved_targeted_plan_is_applied_and_verified_on_its_set(
    repo: tuple[Path, Org], tmp_path: Path
) -> None:
    w, org = repo
    _one_edit(w)
    # an out-of-band change elsewhere: a full plan would revert it, the targeted one leaves it
    other = run(org.prompt("gen-prompt-0003"))
    run(org.call("PUT", f"/api/v2/ai/llm/gateway/prompts/{other['id']}", json={"temperature": 1.5}))
    made = run(jobs.make_plan(org.target(), [str(w)], changed_since="HEAD"))
    assert [op.ref for op in made.plan.changes] == ["PromptTemplate/gen-template-0000"]
    out = tmp_path / "plan.json"
    planfile.save(made.saved, str(out))
    saved = planfile.load(str(out))
    assert saved.targeted == made.saved.targeted
    prepared = run(jobs.prepare_apply(org.target(), plan_file=str(out)))
    assert [op.ref for op in prepared.plan.changes] == ["PromptTemplate/gen-template-0000"]
    done = run(jobs.execute(org.target(), prepared, audit_path=str(tmp_path / "b.jsonl")))
    assert done.ok and done.verify_plan is not None and not done.verify_plan.changes
    assert run(org.prompt("gen-prompt-0003"))["temperature"] == 1.5  # not in the set: untouched
    # the manifests moved after the plan: refused, stale
    _one_edit(w)
    (w / "org.yaml").write_text((w / "org.yaml").read_text().replace("Be brief.", "Short.", 1))
    with pytest.raises(StalePlanError):
        run(jobs.prepare_apply(org.target(), plan_file=str(out)))


def test_refusals_are_clear_and_send_nothing(repo: tuple[Path, Org], tmp_path: Path) -> None:
    w, org = repo
    before = len(run(org.requests_log()))
    with pytest.raises(ConfigError, match="--prune cannot be used with --changed-since"):
        run(jobs.make_plan(org.target(), [str(w)], changed_since="HEAD", prune=True))
    with pytest.raises(ConfigError, match="names no commit in this repository"):
        run(jobs.make_plan(org.target(), [str(w)], changed_since="no-such-branch"))
    with pytest.raises(ConfigError, match="is not a git revision"):
        run(jobs.make_plan(org.target(), [str(w)], changed_since="--output=x"))
    plain = tmp_path / "plain"
    shutil.copytree(w, plain, ignore=shutil.ignore_patterns(".git"))
    os.environ["GIT_CEILING_DIRECTORIES"] = str(tmp_path)
    try:
        with pytest.raises(ConfigError, match="needs the manifests in a git checkout"):
            run(jobs.make_plan(org.target(), [str(plain)], changed_since="HEAD"))
    finally:
        del os.environ["GIT_CEILING_DIRECTORIES"]
    assert len(run(org.requests_log())) == before  # nothing was sent for any of them
    result = CliRunner().invoke(cli, ["apply", "plan.json", "--changed-since", "HEAD"])
    assert result.exit_code == 64
    assert "a saved plan records its own set" in result.output


def test_a_broken_document_at_ref_counts_as_changed(repo: tuple[Path, Org]) -> None:
    w, org = repo
    f = w / "org.yaml"
    good = f.read_text()
    f.write_text("kind: [unclosed\n---\n" + good)  # REF could not be read at all
    git(w, "commit", "-qam", "broken")
    f.write_text(good)
    made = run(jobs.make_plan(org.target(), [str(w)], changed_since="HEAD"))
    assert made.saved.targeted is not None
    assert not made.plan.changes  # the org is the manifests: every document planned, no change
    assert len(made.saved.targeted.objects) == len(made.desired.objects)


def test_a_document_moved_to_another_file_is_no_change(repo: tuple[Path, Org]) -> None:
    w, org = repo
    f = w / "org.yaml"
    docs = list(yaml.safe_load_all(f.read_text()))
    moved = [d for d in docs if d["kind"] == "VectorIndex"]
    f.write_text(yaml.safe_dump_all([d for d in docs if d["kind"] != "VectorIndex"]))
    (w / "indexes.yaml").write_text(yaml.safe_dump_all(moved))
    made = run(jobs.make_plan(org.target(), [str(w)], changed_since="HEAD"))
    assert made.saved.targeted is not None
    assert made.saved.targeted.objects == () and made.saved.targeted.removed == ()
    with pytest.raises(PlanError, match="no-such-model"):  # a real problem is still one
        bad = f.read_text().replace("model-gen-4", "no-such-model", 1)
        f.write_text(bad)
        run(jobs.make_plan(org.target(), [str(w)], changed_since="HEAD"))


def test_the_plan_says_it_is_targeted_and_what_it_did_not_read(repo: tuple[Path, Org]) -> None:
    from reconciler.views import plan as plan_view

    w, org = repo
    _one_edit(w)
    made = run(jobs.make_plan(org.target(), [str(w)], changed_since="HEAD"))
    text = plan_view.text(
        made.plan,
        requests=made.requests,
        scope=plan_view.scope_of(made.saved.targeted, len(made.desired.objects)),
    )
    assert "Targeted plan: the change since HEAD" in text
    assert f"touches 1 of {len(made.desired.objects)} manifest objects" in text
    assert "not the rest of the org" in text
    assert plan_view.scope_of(None, 5) == ""
    assert planfile.to_dict(made.saved)["targeted"]["objects"] == [
        "PromptTemplate/gen-template-0000"
    ]
