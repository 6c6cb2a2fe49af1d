"""Few-shot rendering of a Prompt's system prompt (seed 003), shared by validation and planning.

The remote ``systemPrompt`` is ``{systemPrompt}\\n\\nExamples:\\n`` followed by the examples, each
``User: {input}\\nAssistant: {output}``, joined by ``\\n``. While the rendered text's token count
exceeds ``contextWindowLimit``, the oldest example is dropped. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler import tokens


@dataclass(frozen=True)
class Rendered:
    text: str
    dropped: list[int] = field(default_factory=list)  # indexes of dropped examples, oldest first
    fits: bool = True  # False when even one example cannot fit


def render(text: str, examples: list[tuple[str, str]]) -> str:
    if not examples:
        return text
    block = "\n".join(f"User: {i}\nAssistant: {o}" for i, o in examples)
    return f"{text}\n\nExamples:\n{block}"


def render_system_prompt(spec: dict[str, Any]) -> Rendered:
    """Render ``spec.systemPrompt`` with ``spec.fewShot``, dropping the oldest examples to fit."""
    base = spec.get("systemPrompt")
    base = base if isinstance(base, str) else ""
    few = spec.get("fewShot")
    if not isinstance(few, dict):
        return Rendered(base)
    raw = few.get("examples")
    examples = [
        (str(e.get("input", "")), str(e.get("output", "")))
        for e in (raw if isinstance(raw, list) else [])
        if isinstance(e, dict)
    ]
    limit = few.get("contextWindowLimit")
    if not examples:
        return Rendered(base)
    if not isinstance(limit, int) or isinstance(limit, bool):
        return Rendered(render(base, examples))
    start = 0
    while start < len(examples) and tokens.count(render(base, examples[start:])) > limit:
        start += 1
    if start == len(examples):
        return Rendered(render(base, examples[-1:]), list(range(len(examples))), fits=False)
    return Rendered(render(base, examples[start:]), list(range(start)))
