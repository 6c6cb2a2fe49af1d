"""Few-shot trimming (reconciler/fewshot.py): the oldest examples are dropped until the system
prompt fits the context window.

Covers: the linear-time search equals the one-at-a-time definition (hypothesis), and 6,000
examples are trimmed in one call to exactly the number that fits.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import fewshot, tokens


def _one_at_a_time(base: str, examples: list[tuple[str, str]], limit: int) -> int:
    start = 0
    while start < len(examples) and tokens.count(fewshot.render(base, examples[start:])) > limit:
        start += 1
    return start


_PIECES = st.sampled_from(
    ["hi", "order", " ", "  ", "\n", "\r\n", "!", "...", "?\n", "é", "日本", "123", "x.", "\t"]
)
_TEXT = st.lists(_PIECES, max_size=6).map("".join)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(_TEXT, _TEXT), min_size=1, max_size=10),
    _TEXT,
    st.integers(min_value=1, max_value=90),
)
def test_few_shot_trimming_equals_the_definition(
    examples: list[tuple[str, str]], base: str, limit: int
) -> None:
    spec = {
        "systemPrompt": base,
        "fewShot": {
            "contextWindowLimit": limit,
            "examples": [{"input": i, "output": o} for i, o in examples],
        },
    }
    rendered = fewshot.render_system_prompt(spec)
    expected = _one_at_a_time(base, examples, limit)
    got = len(rendered.dropped) if rendered.fits else len(examples)
    assert got == expected
    if rendered.fits:
        assert tokens.count(rendered.text) <= limit


def test_few_shot_six_thousand_examples() -> None:
    examples = [
        {"input": f"Where is my order {i}?", "output": f"Let me check tracking number {i}."}
        for i in range(6000)
    ]
    spec = {
        "systemPrompt": "You help.",
        "fewShot": {"contextWindowLimit": 1500, "examples": examples},
    }
    rendered = fewshot.render_system_prompt(spec)
    assert rendered.fits and 0 < len(rendered.dropped) < 6000
    assert tokens.count(rendered.text) <= 1500
    kept = fewshot.render(
        "You help.", [(e["input"], e["output"]) for e in examples[len(rendered.dropped) - 1 :]]
    )
    assert tokens.count(kept) > 1500  # one more example would not fit
