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


def write_varied_org(root: Path, n: int, *, prefix: str = "var") -> None:
    """Write ``root/org.yaml``: ``n`` of each kind with every kind of list and map filled, so an
    export has something to order (labels, a template's variables, a version's matrix and
    metadata, an A/B trigger, ordered fallback models, guardrail sets, a weighted split, two
    vector stores' worth of names in one store), each object a little different by ``i``."""
    root.mkdir()
    docs = []
    filters = ("pii", "profanity", "toxicity", "jailbreak")
    categories = ("violence", "hate_speech", "self_harm", "sexual", "harassment")
    for i in range(n):
        t, p = f"{prefix}-template-{i:03d}", f"{prefix}-prompt-{i:03d}"
        names = [f"v{(i + k) % 5}_{k}" for k in range(3)]
        labels = f"{{zone: z{i % 3}, app: a{i}, tier: t{i % 2}}}"
        uses = " ".join(f"{{{{{v}}}}}" for v in names)
        docs.append(
            f"apiVersion: llmgw/v1\nkind: PromptTemplate\n"
            f"metadata: {{name: {t}, labels: {labels}}}\n"
            f'spec:\n  systemInstruction: Be brief.\n  userTemplate: "Q: {uses}"\n'
            f"  variables: [{', '.join(reversed(names))}]\n  maxTokens: {1024 + i}\n"
        )
        for k, v in enumerate(("1.0.0", "1.1.0")):
            matrix = ", ".join(f"{name}: string" for name in reversed(names))
            ab = "  abTest: {variantId: b, trafficPercent: 0.25, enabled: true}\n" if k else ""
            docs.append(
                f"apiVersion: llmgw/v1\nkind: PromptVersion\nmetadata: {{name: {t}@{v}, labels: "
                f'{labels}}}\nspec:\n  template: {t}\n  version: "{v}"\n'
                f'  content: "Answer {uses} ({v})"\n  variables: {{{matrix}}}\n'
                f"  metadata: {{owner: o{i}, build: b{k}, area: x}}\n{ab}"
            )
        fallbacks = ["model-fallback-3", "model-gen-4"][:: 1 if i % 2 else -1]
        docs.append(
            f"apiVersion: llmgw/v1\nkind: Prompt\nmetadata: {{name: {p}, labels: {labels}}}\n"
            f"spec:\n  template: {t}\n  model: anthropic/claude-3-sonnet\n"
            f"  fallbackModels: [{', '.join(fallbacks)}]\n  systemPrompt: You help {i}.\n"
            f"  safetyGuardrails:\n    contentFiltering: [{', '.join(filters[i % 2 :])}]\n"
            f"    blockedCategories: [{', '.join(categories[::-1][: 2 + i % 3])}]\n"
        )
        docs.append(
            f"apiVersion: llmgw/v1\nkind: TrafficSplit\nmetadata: {{name: {p}}}\n"
            f"spec:\n  prompt: {p}\n  strategy: sticky\n  versions:\n"
            '    - {version: "1.1.0", weight: 0.3}\n    - {version: "1.0.0", weight: 0.7}\n'
        )
        docs.append(
            f"apiVersion: llmgw/v1\nkind: VectorIndex\nmetadata: {{name: {prefix}-index-{i:03d}, "
            f"labels: {labels}}}\nspec:\n  vectorStore: {STORE}\n  dimensions: {8 + i}\n"
            "  similarityMetric: cosine\n  embeddingFormat: int8\n"
        )
    (root / "org.yaml").write_text("---\n".join(docs))
