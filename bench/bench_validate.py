"""Benchmark: validating a generated org of 10,000 manifest documents (target: under 1 s).

Generates templates, versions, prompts, splits and indexes (2,000 of each) over 50 files in a
temporary folder, then times `validate_paths` (load + schema + rules, token counts included) over
several runs. Prints one result row; `bench/run.py` collects the rows into bench/results.md.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from reconciler.validate import validate_paths

N = 2000  # objects of each kind: 5 kinds -> 10,000 documents


def generate(root: Path, n: int = N, files: int = 50) -> int:
    docs: list[str] = []
    for i in range(n):
        t = f"tpl-{i:05d}"
        docs.append(f"""apiVersion: llmgw/v1
kind: PromptTemplate
metadata: {{name: {t}, labels: {{team: bench}}}}
spec:
  systemInstruction: You are a support routing assistant number {i}.
  userTemplate: "User message: {{{{user_message}}}}\\nCategory options: billing, technical"
  variables: [user_message]
  maxTokens: 2048""")
        docs.append(f"""apiVersion: llmgw/v1
kind: PromptVersion
metadata: {{name: "{t}@1.0.0"}}
spec:
  template: {t}
  version: "1.0.0"
  content: "Analyze {{{{user_message}}}} for case {i} and answer briefly."
  variables: {{user_message: string}}""")
        docs.append(f"""apiVersion: llmgw/v1
kind: Prompt
metadata: {{name: agent-{i:05d}}}
spec:
  template: {t}
  model: model-gen-4
  fallbackModels: [model-fallback-3]
  systemPrompt: You are a helpful customer support agent for line {i}.
  fewShot:
    contextWindowLimit: 500
    examples: [{{input: Where is my order?, output: Let me check the tracking number.}}]""")
        docs.append(f"""apiVersion: llmgw/v1
kind: TrafficSplit
metadata: {{name: agent-{i:05d}}}
spec:
  prompt: agent-{i:05d}
  defaultVersion: "1.0.0\"""")
        docs.append(f"""apiVersion: llmgw/v1
kind: VectorIndex
metadata: {{name: index-{i:05d}}}
spec:
  vectorStore: 6d1f2c1e-0b7a-4a55-9d1e-3f3f8a2b9c10
  dimensions: 1536
  similarityMetric: cosine
  embeddingFormat: float32""")
    per = len(docs) // files
    for f in range(files):
        chunk = docs[f * per : (f + 1) * per]
        (root / f"org-{f:03d}.yaml").write_text("\n---\n".join(chunk) + "\n")
    return len(docs)


def main() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        count = generate(root)
        validate_paths([str(root)])  # warm-up: token encoding load, schema compile
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            report = validate_paths([str(root)])
            runs.append(time.perf_counter() - t0)
        assert len(report.documents) == count and not report.errors, report.errors[:3]
        del report
        # memory in a run of its own: tracemalloc slows the run it watches
        tracemalloc.start()
        validate_paths([str(root)])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    best = min(runs)
    row = {
        "benchmark": "validate 10,000 documents (50 files)",
        "documents": count,
        "wall_s_best_of_3": round(best, 3),
        "ms_per_1000_docs": round(best / count * 1000 * 1000, 1),
        # the process's RSS would include whatever ran before in `make bench`
        "peak_python_heap_mb (tracemalloc)": round(peak / 2**20, 1),
    }
    return row


if __name__ == "__main__":
    result = main()
    json.dump(result, sys.stdout, indent=2)
    print()
