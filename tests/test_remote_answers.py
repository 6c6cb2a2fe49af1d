"""``remote.answers``: every answer bounded in size and shape.

Covers: bodies past the bound refused (streamed, declared, gzip bombs, with tracemalloc peaks);
deep nesting, huge numbers, NaN, duplicate keys, invalid UTF-8 and non-JSON refused as
ProtocolErrors naming the request; a byte-order mark skipped; compressed answers read (gzip,
zlib and raw deflate); an encoding not asked for refused; an error body read leniently, its
invisible characters escaped.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from collections.abc import Callable

import pytest

from reconciler import errors
from tests.remote_fakes import Chunks, answering, make

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (DEEP, "nested deeper than 64 levels"),
        (b"[" * 70 + b"]" * 70, "nested deeper than 64 levels"),
        (b'{"n": ' + b"9" * 5000 + b"}", "a number in the body has more digits than llmgw reads"),
        (b'{"n": 1e400}', 'the number "1e400" is out of range'),
        (b'{"n": NaN}', "NaN is not JSON"),
        (b'{"n": -Infinity}', "-Infinity is not JSON"),
        (b'{"id": "a", "id": "b"}', 'an object has the key "id" twice'),
        (b'{"name": "caf\xe9"}', "the body is not valid UTF-8 (at byte 13)"),
        (b"<html>maintenance</html>", "the body is not JSON (Expecting value at line 1 column 1)"),
        (b'{"entities": [', "the body is not JSON"),
    ],
)
async def test_bodies_llmgw_cannot_read_are_protocol_errors(content: bytes, needle: str) -> None:
    async with make(answering(content)) as c:
        with pytest.raises(errors.ProtocolError) as exc:
            await c.request("GET", "/x")
    assert str(exc.value).startswith("the server answered something llmgw cannot read: GET /x")
    assert needle in str(exc.value)


async def test_a_byte_order_mark_is_skipped() -> None:
    async with make(answering(b'\xef\xbb\xbf{"ok": 1}')) as c:
        assert (await c.request("GET", "/x")).body == {"ok": 1}


async def test_a_body_past_the_bound_is_refused() -> None:
    stream = Chunks([b"[" + b"0," * 500] * 10_000)
    async with make(answering(stream), max_body=100_000) as c:
        with pytest.raises(errors.ProtocolError, match="reads at most 100,000 bytes"):
            await c.request("GET", "/x")
    assert stream.sent < 200  # stopped at the bound, not at the end of the 10 MB


async def test_a_declared_length_past_the_bound_is_refused_unread() -> None:
    stream = Chunks([b"{}"])
    handler = answering(stream, **{"content-length": str(100 * 2**20)})
    async with make(handler) as c:
        with pytest.raises(errors.ProtocolError, match="the body is 104,857,600 bytes"):
            await c.request("GET", "/x")
    assert stream.sent == 0


async def test_a_gzip_bomb_is_inflated_only_to_the_bound() -> None:
    bomb = gzip.compress(b" " * (64 * 2**20), 9)  # 64 MiB of spaces in about 64 KiB
    assert len(bomb) < 2**17
    tracemalloc.start()
    try:
        async with make(answering(Chunks([bomb]), **{"content-encoding": "gzip"})) as c:
            c.max_body = 2**20
            with pytest.raises(errors.ProtocolError, match="reads at most 1,048,576 bytes"):
                await c.request("GET", "/x")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # httpx's own decoder would inflate the chunk whole: 64 MiB


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
        ("identity", lambda b: b),
    ],
)
async def test_compressed_answers_are_read(encoding: str, pack: Callable[[bytes], bytes]) -> None:
    body = json.dumps({"text": "x" * 10_000}).encode()
    data = pack(body)
    stream = Chunks([data[i : i + 100] for i in range(0, len(data), 100)])
    async with make(answering(stream, **{"content-encoding": encoding})) as c:
        assert (await c.request("GET", "/x")).body == {"text": "x" * 10_000}


async def test_an_encoding_not_asked_for_is_refused() -> None:
    async with make(answering(Chunks([b"{}"]), **{"content-encoding": "br"})) as c:
        with pytest.raises(errors.ProtocolError, match='encoded as "br", which llmgw did not'):
            await c.request("GET", "/x")


async def test_an_error_body_is_read_leniently() -> None:
    raw = b'{"message": "bad \xff byte \x1b[31m red", "code": "validation.failed"}'
    async with make(answering(raw, 400)) as c:
        with pytest.raises(errors.InvalidRequestError) as exc:
            await c.request("GET", "/x")
    assert "\x1b" not in str(exc.value) and "\\x1b[31m red" in str(exc.value)
