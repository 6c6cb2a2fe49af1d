"""Field diffs (reconciler/diffing.py, the only deepdiff user).

Covers: equal values give no items and never import deepdiff's work; a changed, added and
removed field each give one item with old and new; lists are compared whole (one item for the
list); keys that are not plain identifiers are quoted in paths and parse back; ints and floats
that are equal numbers are no change; the top-level fields a diff touches; the text change of a
prompt: unified lines without headers, placeholders added and removed.
"""

from __future__ import annotations

from reconciler.diffing import (
    ADD,
    CHANGE,
    REMOVE,
    diff,
    format_path,
    parse_path,
    text_change,
    top_fields,
)


def test_equal_values_have_no_diff() -> None:
    assert diff({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": [1, 2]}}) == ()


def test_change_add_remove() -> None:
    items = diff({"a": 1, "b": 2, "g": {"x": 1}}, {"a": 9, "c": 3, "g": {"x": 1, "y": 2}})
    assert [(i.op, i.path, i.old, i.new) for i in items] == [
        (CHANGE, "a", 1, 9),
        (REMOVE, "b", 2, None),
        (ADD, "c", None, 3),
        (ADD, "g.y", None, 2),
    ]


def test_lists_are_whole() -> None:
    (item,) = diff({"models": ["a", "b"]}, {"models": ["b", "a", "c"]})
    assert (item.op, item.path, item.old, item.new) == (
        CHANGE,
        "models",
        ["a", "b"],
        ["b", "a", "c"],
    )


def test_odd_keys_are_quoted_and_parse_back() -> None:
    (item,) = diff({"versions": {"2.1.0": 0.5}}, {"versions": {"2.1.0": 0.8}})
    assert item.path == 'versions["2.1.0"]'
    assert parse_path(item.path) == ["versions", "2.1.0"]
    assert format_path(["labels", "example.com/owner", "x"]) == 'labels["example.com/owner"].x'


def test_numbers_compare_as_numbers() -> None:
    assert diff({"t": 1}, {"t": 1.0}) == ()


def test_top_fields() -> None:
    items = diff({"a": {"b": 1}, "c": 1}, {"a": {"b": 2}, "c": 2})
    assert top_fields(items) == {"a", "c"}


def test_text_change_names_placeholders() -> None:
    change = text_change("Hi {{a}}\nline two", "Hi {{b}}\nline two\nline three")
    assert change.placeholders_added == ["b"] and change.placeholders_removed == ["a"]
    assert "-Hi {{a}}" in change.lines and "+line three" in change.lines
    assert not any(ln.startswith(("---", "+++")) for ln in change.lines)
