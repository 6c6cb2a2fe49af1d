"""Export, as a pure rendering plus a careful writer.

Covers: one file per template (with its versions), per prompt (with its split) and per vector
store; the files validate clean; planning them against the same (unlabelled) org gives only
adoptions, and against a labelled org nothing; no server-managed field or management label is
written; --kind and --name narrow the output; existing files are reported as conflicts; a
file that cannot be written (a device where a file should go, a folder that cannot be made) is a
FileError saying what was written before it, never a crash.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import FileError
from reconciler.export import conflicts, render, write
from reconciler.normalize import desired_state
from reconciler.planner import plan
from reconciler.validate import validate_paths
from tests.test_planner import desired, live_copy


def test_export_round_trip(tmp_path: Path) -> None:
    live = live_copy(desired(), managed=False)
    files = render(live)
    assert [f.path for f in files] == [
        "templates/escalation-routing.yaml",
        "templates/support-ticket-classifier.yaml",
        "prompts/support-agent.yaml",
        "prompts/ticket-triage.yaml",
        "indexes/6d1f2c1e-0b7a-4a55-9d1e-3f3f8a2b9c10.yaml",
    ]
    write(files, str(tmp_path))
    report = validate_paths([str(tmp_path)])
    assert report.problems == []
    exported = desired_state(report.documents)
    adopt_only = plan(exported, live)
    assert {o.action.value for o in adopt_only.changes} == {"adopt"}
    assert plan(exported, live_copy(desired())).changes == []
    text = "".join(f.text for f in files)
    for server_field in ("etag", "selfUri", "dateCreated", "managed-by", '"id"', "status"):
        assert server_field not in text


def test_export_filters_and_conflicts(tmp_path: Path) -> None:
    live = live_copy(desired())
    only = render(live, kinds=["Prompt"], name="^support")
    assert [f.path for f in only] == ["prompts/support-agent.yaml"]
    assert "kind: TrafficSplit" not in only[0].text
    write(only, str(tmp_path))
    assert conflicts(only, str(tmp_path)) == ["prompts/support-agent.yaml"]


def test_a_file_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    files = render(live_copy(desired(), managed=False))
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "support-agent.yaml").symlink_to("/dev/full")
    with pytest.raises(FileError) as info:
        write(files, str(tmp_path))
    assert "is a device" in str(info.value) or "not a regular file" in str(info.value)
    assert "2 files were written before it" in str(info.value)
    (tmp_path / "blocked").write_text("a file where a folder should be")
    with pytest.raises(FileError) as info:
        write(files, str(tmp_path / "blocked"))
    assert "cannot be created" in str(info.value) and "nothing was written" in str(info.value)


async def test_an_unbound_prompt_is_reported_not_exported(tmp_path: Path) -> None:
    """Seed 003 creates a prompt without a template; no manifest can say that, so export
    leaves it out and names it, and plan shows binding it as a change of `template`."""
    from reconciler import jobs
    from tests.test_e2e import Org

    org = Org()
    await org.call(
        "POST",
        "/api/v2/ai/llm/gateway/prompts",
        json={"name": "loose", "modelEndpointRef": "model-gen-4", "systemPrompt": "Hi."},
    )
    run = await jobs.export_org(org.target(), str(tmp_path / "out"))
    assert run.skipped == ["Prompt/loose"]
    assert not (tmp_path / "out" / "prompts" / "loose.yaml").exists()


def test_the_editor_modeline_points_at_the_schema_or_is_left_out() -> None:
    live = live_copy(desired(), managed=False)
    assert not any(f.text.startswith("#") for f in render(live))
    files = render(live, schema="../schemas/manifest.schema.json")
    assert all(
        f.text.startswith("# yaml-language-server: $schema=../../schemas/manifest.schema.json\n")
        for f in files
    )
