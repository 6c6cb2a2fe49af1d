"""An org as JSON and back: the snapshot ``--state`` persists and ``PUT /__emulator/state`` takes.

Each section says what of the org it writes (``Part.snapshot``) and how one of its stored
objects is loaded back (``Part.replay``: named steps, each replaying the object through the
same checks a client's write goes through, then restoring the server-managed fields the snapshot
recorded, each checked for its type). This module holds what is common to all of them: the
format number, the deep copy on the way out and in, the order of the sections, the helpers that
read a snapshot's parts, and the rule that a snapshot loads completely or not at all (the steps
run on a scratch org; the caller swaps it in only on success).

What this module must not do: know any kind's fields (the sections do), write files (the server
does), or leave a half-loaded org behind.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from reconciler.emulator.state.common import ApiError, is_num

SNAPSHOT_FORMAT = 1

Step = tuple[str, Callable[[], object]]
"""One step of a replay: its name for messages (``prompts.<id>``) and what it does."""


class Part(Protocol):
    """A section as persistence sees it."""

    def snapshot(self) -> dict[str, Any]:
        """This section's keys of a snapshot, holding the stored objects themselves (copied
        by ``snapshot`` below, shared by ``collect``)."""
        ...

    def replay(self, data: Mapping[str, Any]) -> Iterable[Step]:
        """The steps that load this section's keys of ``data`` into a fresh org, lazily (a
        malformed part is reported when its turn comes)."""
        ...


def collect(parts: Iterable[Part]) -> dict[str, Any]:
    """The org as a snapshot (without runtime test hooks) that holds the stored objects
    themselves, not copies: for a caller that serialises it at once and neither changes nor
    keeps it (its JSON is the same as ``snapshot``'s)."""
    data: dict[str, Any] = {"format": SNAPSHOT_FORMAT}
    for part in parts:
        data.update(part.snapshot())
    return data


def snapshot(parts: Iterable[Part]) -> dict[str, Any]:
    """A JSON-serialisable deep copy of the org (without runtime test hooks)."""
    copied: dict[str, Any] = json.loads(json.dumps(collect(parts)))
    return copied


def check_format(data: Any) -> None:
    if not isinstance(data, Mapping):
        raise ValueError("a state snapshot is a JSON object")
    fmt = data.get("format", SNAPSHOT_FORMAT)
    if isinstance(fmt, bool) or fmt != SNAPSHOT_FORMAT:  # True == 1 in Python, not in JSON
        raise ValueError(f"state format {fmt!r} is not {SNAPSHOT_FORMAT}")


def replay(data: Mapping[str, Any], parts: Iterable[Part]) -> None:
    """Load a snapshot into the fresh org ``parts`` belong to, section by section in order, or
    raise ``ValueError`` naming the first part that is not one (the org is then to be thrown
    away)."""
    where = "snapshot"
    try:
        copied = json.loads(json.dumps(dict(data), allow_nan=False))  # nothing shared
        for part in parts:
            for step_name, step in part.replay(copied):
                where = step_name
                step()
    except ApiError as exc:
        raise ValueError(f"not an emulator state snapshot: {where}: {exc.message}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ValueError(f"not an emulator state snapshot: {where}: {exc!s:.200}") from None


# -- reading a snapshot's parts (ValueError naming what is wrong) -------------------------------
def mapping(value: Any, where: str) -> dict[str, Any]:
    """A snapshot's map (absent: empty); ``ValueError`` naming ``where`` otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object")
    return value


def entry(value: Any, where: str) -> dict[str, Any]:
    """One object of a snapshot: an object, never null."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object")
    return value


def listing(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list")
    return value


def text(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def same(value: Any, expected: str, name: str) -> None:
    if value != expected:
        raise ValueError(f"{name} {value!r:.60} is not its key {expected!r:.60}")


def finite_number(value: Any) -> float:
    if not (is_num(value) and math.isfinite(value)):
        raise ValueError(f"{value!r:.40} is not a finite number")
    return float(value)
