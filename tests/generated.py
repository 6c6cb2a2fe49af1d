"""Generated orgs for tests that need many objects: one template per ``n``, its versions, a
prompt bound to it (with a traffic split over the versions if asked) and a vector index, all in
one manifest file."""

from __future__ import annotations

from pathlib import Path

STORE = "6d1f2c1e-0b7a-4a55-9d1e-3f3f8a2b9c10"


def write_org(
    root: Path,
    n: int,
    *,
    prefix: str = "gen",
    versions: tuple[str, ...] = ("1.0.0",),
    split: bool = False,
) -> None:
    """Write ``root/org.yaml``; with ``split``, traffic is shared evenly over ``versions``."""
    root.mkdir()
    docs = []
    for i in range(n):
        t = f"{prefix}-template-{i:04d}"
        docs.append(
            f"apiVersion: llmgw/v1\nkind: PromptTemplate\nmetadata: {{name: {t}}}\n"
            'spec:\n  systemInstruction: Be brief.\n  userTemplate: "Q: {{q}}"\n'
            "  variables: [q]\n"
        )
        for v in versions:
            docs.append(
                f"apiVersion: llmgw/v1\nkind: PromptVersion\nmetadata: {{name: {t}@{v}}}\n"
                f'spec:\n  template: {t}\n  version: "{v}"\n  content: "Answer {{{{q}}}} ({v})"\n'
                "  variables: {q: string}\n"
            )
        p = f"{prefix}-prompt-{i:04d}"
        docs.append(
            f"apiVersion: llmgw/v1\nkind: Prompt\nmetadata: {{name: {p}}}\n"
            f"spec:\n  template: {t}\n  model: model-gen-4\n  systemPrompt: You help.\n"
        )
        if split:
            weight = 1 / len(versions)
            entries = "".join(f'    - {{version: "{v}", weight: {weight}}}\n' for v in versions)
            docs.append(
                f"apiVersion: llmgw/v1\nkind: TrafficSplit\nmetadata: {{name: {p}}}\n"
                f"spec:\n  prompt: {p}\n  versions:\n{entries}"
            )
        docs.append(
            f"apiVersion: llmgw/v1\nkind: VectorIndex\nmetadata: {{name: {prefix}-index-{i:04d}}}\n"
            f"spec:\n  vectorStore: {STORE}\n  dimensions: 8\n  similarityMetric: cosine\n"
            "  embeddingFormat: int8\n"
        )
    (root / "org.yaml").write_text("---\n".join(docs))
