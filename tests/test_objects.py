"""Objects in the manifest's shape and the live state (reconciler/objects.py).

Covers: fingerprints are stable over key order and differ when a value does; labels are
strings, sorted, with the management label only on the desired side; an ignored field takes
its live value (nested too, and is dropped when live lacks it), leaving the desired object
itself unchanged; ``Entity`` reads typed fields and turns every wrong shape into a
ProtocolError naming the listing, the entity and the field (a value that is not an object, a
string where a number belongs, a missing required field, an id that cannot be a path segment,
a non-ASCII ETag); ``Unique`` refuses a second entity with one identity.
"""

from __future__ import annotations

import pytest

from reconciler.errors import ProtocolError
from reconciler.objects import Entity, Obj, Unique, fingerprint, labels_of, with_ignores


def test_fingerprint_is_stable() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_labels() -> None:
    assert labels_of({"team": "x", "a": 1}, managed=True) == {
        "a": "1",
        "managed-by": "llmgw",
        "team": "x",
    }
    assert labels_of(None, managed=False) == {}
    assert labels_of(["not", "a", "map"], managed=False) == {}


def test_with_ignores_takes_the_live_value() -> None:
    want = Obj("Prompt", "p", {"temperature": 0.2, "guard": {"max": 10, "keep": 1}})
    have = Obj("Prompt", "p", {"temperature": 0.9, "guard": {"max": 20}})
    got = with_ignores(want, have, ["temperature", "guard.max", "guard.keep"])
    assert got.fields == {"temperature": 0.9, "guard": {"max": 20}}
    assert want.fields["temperature"] == 0.2  # the desired object is not touched
    assert with_ignores(want, None, ["temperature"]) is want


def test_entity_reads_typed_fields() -> None:
    e = Entity({"name": "t", "id": "abc", "n": 3, "labels": {"a": "b"}}, "/x", "thing", "name")
    assert e.string("name") == "t" and e.integer("n") == 3 and e.identity("id") == "abc"
    assert e.string("absent") is None


@pytest.mark.parametrize(
    ("raw", "read", "says"),
    [
        ([1, 2], lambda e: None, "is an array, not an object"),
        ({"name": "t", "n": "3"}, lambda e: e.integer("n"), 'n is "3", not an integer'),
        ({"name": "t"}, lambda e: e.required("id", e.string("id")), "id is missing"),
        ({"name": "t", "id": "a/b"}, lambda e: e.identity("id"), "cannot be part of a path"),
        ({"name": "t", "etag": '"é"'}, lambda e: e.etag("etag"), "not an entity tag"),
        ({"name": "t", "labels": {"a": 1}}, lambda e: e.labels(), "labels.a is 1"),
    ],
)
def test_entity_wrong_shapes(raw: object, read: object, says: str) -> None:
    with pytest.raises(ProtocolError) as info:
        read(Entity(raw, "/api/x", "thing", "name"))  # type: ignore[operator]
    assert says in str(info.value) and "/api/x" in str(info.value)


def test_unique_refuses_a_second_identity() -> None:
    seen = Unique("/api/x", "templates")
    seen.add("name", "a", "id-1")
    with pytest.raises(ProtocolError, match="two templates have the name"):
        seen.add("name", "a", "id-2")
