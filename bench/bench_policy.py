"""Benchmark: 50 policy rules over 1,000 manifest documents (target: under 2 s).

Generates 1,000 documents (200 of each kind, as bench_validate.py writes them) and a pack of 50
rules: the five of examples/policies/ and 45 more spread over every kind (field comparisons,
loops, regular expressions, label and environment scopes, message expressions). Times loading
the pack (parse, schema, compile, static checks) and judging every document, and the whole
`validate` with and without the pack. Prints result rows; `bench/run.py` collects them into
bench/results.md.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

from reconciler.loader import load_paths
from reconciler.policy import engine, pack
from reconciler.validate import checked, validate_paths

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples" / "policies"

# (kinds, expr) pairs: 9 shapes x 5 = 45 rules beside the five examples
SHAPES = [
    ("Prompt", "spec.maxTokens <= 4096"),
    ("Prompt", "spec.fewShot.examples.all(e, size(e.input) < 2000)"),
    ("Prompt", "metadata.name.matches('^[a-z][a-z0-9-]*$')"),
    ("PromptTemplate", "spec.maxTokens >= 256 && spec.safetyGuardrails.jailbreakDetection"),
    ("PromptTemplate", "spec.variables.all(v, v.matches('^[a-z_]+$'))"),
    ("PromptVersion", "size(spec.content) < 4000 && !spec.rollbackDirective"),
    ("TrafficSplit", "has(spec.defaultVersion) || spec.versions.exists(v, v.weight >= 0.5)"),
    ("VectorIndex", "spec.dimensions in [384, 768, 1024, 1536, 3072]"),
    ("VectorIndex", "spec.similarityMetric != 'dot_product' || spec.embeddingFormat == 'float32'"),
]


def _bench_validate():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_validate", HERE / "bench_validate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# rules for every kind (no match): 50 of them judge each of the 1,000 documents
UNIVERSAL = [
    "metadata.name.matches('^[a-z0-9][a-z0-9@.-]*$')",
    "!('owner' in metadata.labels) || metadata.labels['owner'].endsWith('@example.com')",
    "env != 'prod' || !('llmgw/allow-replace' in metadata.annotations)",
    "size(metadata.name) <= 128 && metadata.labels.all(k, size(k) < 64)",
    "apiVersion == 'llmgw/v1' && kind != ''",
]


def write_universal(root: Path) -> Path:
    rules = [
        {"id": f"every-kind-{n:02d}", "expr": UNIVERSAL[n % len(UNIVERSAL)], "message": "m"}
        for n in range(50)
    ]
    doc = {"apiVersion": "llmgw/v1", "kind": "PolicySet", "metadata": {"name": "u"}, "rules": rules}
    path = root / "universal.yaml"
    path.write_text(json.dumps(doc, indent=1))
    return path


def write_pack(root: Path) -> Path:
    rules = []
    for n in range(45):
        kind, expr = SHAPES[n % len(SHAPES)]
        rule = {
            "id": f"bench-rule-{n:02d}",
            "match": {"kinds": [kind]},
            "expr": expr,
            "messageExpression": f"'{kind} ' + metadata.name + ' breaks bench rule {n}'",
            "severity": "warning",
        }
        if n % 3 == 0:
            rule["match"]["environments"] = ["prod", "staging"]
        if n % 4 == 0:
            rule["match"]["labels"] = {"team": "bench"}
        rules.append(rule)
    doc = {
        "apiVersion": "llmgw/v1",
        "kind": "PolicySet",
        "metadata": {"name": "bench"},
        "rules": rules,
    }
    path = root / "policies"
    path.mkdir()
    (path / "bench.yaml").write_text(json.dumps(doc, indent=1))  # JSON is YAML
    (path / "org.yaml").write_text((EXAMPLES / "org-guardrails.yaml").read_text())
    return path


def main() -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        manifests = root / "manifests"
        manifests.mkdir()
        count = _bench_validate().generate(manifests, n=200, files=10)
        policies = write_pack(root)
        today = dt.date.today()

        loads = []
        for _ in range(5):
            t0 = time.perf_counter()
            loaded = pack.load([str(policies)])
            loads.append(time.perf_counter() - t0)
        assert not loaded.problems, loaded.problems[:3]
        assert len(loaded.rules) == 50, len(loaded.rules)

        docs = load_paths([str(manifests)]).documents
        _, clean = checked(docs)
        judges = []
        for _ in range(5):
            t0 = time.perf_counter()
            outcome = engine.judge(loaded.rules, clean, "prod", today)
            judges.append(time.perf_counter() - t0)
        evaluations = len(outcome.verdicts)

        plain, with_rules = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            validate_paths([str(manifests)])
            plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            validate_paths([str(manifests)], policies=pack.load([str(policies)]), env="prod")
            with_rules.append(time.perf_counter() - t0)
        universal = pack.load([str(write_universal(root))])
        assert not universal.problems, universal.problems[:3]
        every = []
        for _ in range(5):
            t0 = time.perf_counter()
            all_out = engine.judge(universal.rules, clean, "prod", today)
            every.append(time.perf_counter() - t0)
    judge_s = min(judges)
    every_s = min(every)
    return [
        {
            "benchmark": "policies: 50 rules judged on 1,000 documents (target < 2 s)",
            "documents": count,
            "rules": len(loaded.rules),
            "rule_evaluations": evaluations,
            "violations": len(outcome.problems),
            "load_and_compile_s": round(min(loads), 3),
            "judge_s": round(judge_s, 3),
            "us_per_evaluation": round(judge_s / max(evaluations, 1) * 1e6, 1),
            "validate_without_policies_s": round(min(plain), 3),
            "validate_with_policies_s": round(min(with_rules), 3),
        },
        {
            "benchmark": "policies: 50 rules for every kind, each judging all 1,000 documents",
            "documents": count,
            "rules": len(universal.rules),
            "rule_evaluations": len(all_out.verdicts),
            "judge_s": round(every_s, 3),
            "us_per_evaluation": round(every_s / max(len(all_out.verdicts), 1) * 1e6, 1),
        },
    ]


if __name__ == "__main__":
    for row in main():
        print(json.dumps(row))
    sys.exit(0)
