"""The multipart close-delimiter watch: found wherever the stream's chunks split it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.uploads import CloseDelimiter

BODY = (
    b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    b"pixels --b0undary-- (no CRLF before it: not a delimiter)\r\n--b0undary--\r\nepilogue"
)


async def chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def seen(parts: list[bytes]) -> bool:
    close = CloseDelimiter(b"b0undary")

    async def drain() -> bytes:
        return b"".join([chunk async for chunk in close.watch(chunks(parts))])

    assert asyncio.run(drain()) == b"".join(parts)  # passed on untouched
    return close.seen


@pytest.mark.parametrize("split", range(len(BODY) + 1))
def test_the_close_delimiter_is_found_wherever_the_chunks_split_it(split: int) -> None:
    assert seen([BODY[:split], BODY[split:]])


def test_a_body_cut_before_its_close_delimiter_never_sees_it() -> None:
    cut = BODY.rindex(b"\r\n--b0undary--") + len(b"\r\n--b0undary-")
    assert not seen([BODY[:cut]])
    assert not seen([BODY[i : i + 1] for i in range(cut)])


def test_an_empty_form_opens_with_its_close_delimiter() -> None:
    assert seen([b"--b0undary--\r\n"])
