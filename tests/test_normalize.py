"""Normalisation (reconciler/normalize.py through each kind): a valid document -> its desired
object, in the shape live objects normalise to.

Covers: the normal form of each kind, written out (defaults filled: description, maxTokens,
guardrails, topP, strategy, autoIngest; the management label added beside the user's labels;
whole numbers that are floats by nature made floats: temperature 1 -> 1.0, weight 1 -> 1.0; sets
sorted: contentFiltering, blockedCategories; a prompt's system prompt rendered with its few-shot
examples; a split's versions as a version -> weight map; an index keyed by its store); the
source line and annotations carried; identity: the ref of every kind; and each desired object
written as the request body the kind sends, read back by the kind's live normaliser, is the same
object (no diff); normalising twice gives the same objects.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.diffing import diff
from reconciler.kinds import index, prompt, template, version
from reconciler.normalize import desired_state
from reconciler.validate import validate_paths

STORE = "6d1f2c1e-0b7a-4a55-9d1e-3f3f8a2b9c10"
DOCS = f"""\
apiVersion: llmgw/v1
kind: PromptTemplate
metadata: {{name: tpl, labels: {{team: x}}}}
spec:
  systemInstruction: Hi.
  userTemplate: "Q: {{{{q}}}}"
  variables: [q]
---
apiVersion: llmgw/v1
kind: PromptVersion
metadata:
  name: "tpl@1.0.0"
  annotations: {{note: kept}}
spec:
  template: tpl
  version: "1.0.0"
  content: "Answer {{{{q}}}}"
  variables: {{q: example}}
---
apiVersion: llmgw/v1
kind: Prompt
metadata: {{name: pro}}
spec:
  template: tpl
  model: model-gen-4
  systemPrompt: Be brief.
  temperature: 1
  fewShot:
    contextWindowLimit: 500
    examples:
      - {{input: a, output: b}}
  safetyGuardrails:
    contentFiltering: [profanity, pii]
    blockedCategories: [violence, hate_speech]
    maxTokens: 1000
---
apiVersion: llmgw/v1
kind: TrafficSplit
metadata: {{name: pro}}
spec:
  prompt: pro
  versions:
    - {{version: "1.0.0", weight: 1}}
---
apiVersion: llmgw/v1
kind: VectorIndex
metadata: {{name: idx}}
spec:
  vectorStore: {STORE}
  dimensions: 1536
  similarityMetric: cosine
  embeddingFormat: float32
"""


def _desired(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    (tmp_path / "m.yaml").write_text(DOCS)
    report = validate_paths([str(tmp_path)])
    assert report.errors == [], [str(p) for p in report.errors]
    return desired_state(report.documents)


def test_the_normal_form_of_each_kind(tmp_path: Path) -> None:
    want = _desired(tmp_path)
    assert list(want) == [
        "PromptTemplate/tpl",
        "PromptVersion/tpl@1.0.0",
        "Prompt/pro",
        "TrafficSplit/pro",
        f"VectorIndex/{STORE}/idx",
    ]
    assert want["PromptTemplate/tpl"].fields == {
        "description": "",
        "systemInstruction": "Hi.",
        "userTemplate": "Q: {{q}}",
        "variables": ["q"],
        "maxTokens": 4096,
        "safetyGuardrails": {
            "jailbreakDetection": True,
            "outputModeration": True,
            "piiFilter": True,
        },
        "labels": {"managed-by": "llmgw", "team": "x"},
    }
    v = want["PromptVersion/tpl@1.0.0"]
    assert v.fields == {
        "content": "Answer {{q}}",
        "variables": {"q": "example"},
        "rollbackDirective": False,
        "metadata": {},
        "labels": {"managed-by": "llmgw"},
    }
    assert v.annotations == {"note": "kept"} and v.source.endswith("m.yaml:9")
    p = want["Prompt/pro"].fields
    assert p == {
        "template": "tpl",
        "model": "model-gen-4",
        "fallbackModels": [],
        "systemPrompt": "Be brief.\n\nExamples:\nUser: a\nAssistant: b",
        "temperature": 1.0,
        "topP": 0.95,
        "maxTokens": 2048,
        "safetyGuardrails": {
            "blockedCategories": ["hate_speech", "violence"],
            "contentFiltering": ["pii", "profanity"],
            "maxTokens": 1000,
        },
        "labels": {"managed-by": "llmgw"},
    }
    assert isinstance(p["temperature"], float)
    split = want["TrafficSplit/pro"].fields
    assert split == {"strategy": "random", "versions": {"1.0.0": 1.0}}
    assert isinstance(split["versions"]["1.0.0"], float)
    assert want[f"VectorIndex/{STORE}/idx"].fields == {
        "dimensions": 1536,
        "similarityMetric": "cosine",
        "embeddingFormat": "float32",
        "autoIngest": False,
        "labels": {"managed-by": "llmgw"},
    }


def test_the_request_body_reads_back_as_the_same_object(tmp_path: Path) -> None:
    want = _desired(tmp_path)
    tpl = want["PromptTemplate/tpl"]
    raw = {**template.RESOURCE.body(tpl.key, tpl.fields), "id": "t-1", "version": 1}
    assert diff(template.RESOURCE.live(raw).fields, tpl.fields) == ()

    ver = want["PromptVersion/tpl@1.0.0"]
    body = version.RESOURCE.body("t-1", "1.0.0", ver.fields)
    assert diff(version.RESOURCE.live({**body, "status": "ACTIVE"}, "tpl").fields, ver.fields) == ()

    pro, split = want["Prompt/pro"], want["TrafficSplit/pro"]
    body = prompt.RESOURCE.body(pro.fields, "t-1")
    body.update(name="pro", id="p-1", trafficDistribution=prompt.SPLIT_RESOURCE.body(split.fields))
    live_prompt, live_split = prompt.RESOURCE.live(body, {"t-1": "tpl"})
    assert diff(live_prompt.fields, pro.fields) == ()
    assert live_split is not None and diff(live_split.fields, split.fields) == ()

    idx = want[f"VectorIndex/{STORE}/idx"]
    body = {**index.RESOURCE.body("idx", idx.fields), "status": "ACTIVE"}
    assert diff(index.RESOURCE.live(body, STORE).fields, idx.fields) == ()


def test_normalising_is_deterministic(tmp_path: Path) -> None:
    first = _desired(tmp_path)
    again = _desired(tmp_path)
    assert {r: o.fields for r, o in first.items()} == {r: o.fields for r, o in again.items()}
