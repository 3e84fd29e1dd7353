"""DATA read in bulk: the same message, refusals and leftover bytes as reading it line by
line, however the client's bytes are cut into reads."""

from __future__ import annotations

import asyncio
import random

import pytest

from ie_core.smtp.dataread import Unstuffer, receive

MAX_LINE = 64


def line_by_line(stream: bytes, size_limit: int = 0) -> tuple[bytes, bool, bool, bytes]:
    """The reference: RFC 5321 read one CRLF line at a time (what aiosmtpd does).
    (message, too big, too long, what follows the end marker)."""
    out, received, pos, too_long = [], 0, 0, False
    while True:
        end = stream.index(b"\r\n", pos) + 2
        line = stream[pos:end]
        pos = end
        if line == b".\r\n":
            break
        received += len(line)
        too_long = too_long or any(len(part) > MAX_LINE for part in line.split(b"\n")[:-1])
        out.append(line[1:] if line.startswith(b".") else line)
    too_big = bool(size_limit and received > size_limit)
    message = b"" if too_big or too_long else b"".join(out)
    return message, too_big, too_long, stream[pos:]


def bulk(stream: bytes, cuts: list[int], size_limit: int = 0,
         reader_limit: int = 2**16) -> tuple[bytes, bool, bool, bytes]:
    """Read ``stream`` with :func:`receive`, the bytes arriving cut at ``cuts``."""

    async def run() -> tuple[bytes, bool, bool, bytes]:
        reader = asyncio.StreamReader(limit=reader_limit)
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]

        async def client() -> None:
            for piece in pieces:
                reader.feed_data(piece)
                await asyncio.sleep(0)
            reader.feed_eof()

        feeder = asyncio.create_task(client())
        got = bytearray()

        async def write(data: bytes) -> None:
            got.extend(data)

        unstuffer = Unstuffer(size_limit, MAX_LINE)
        await receive(reader, unstuffer, write)
        await feeder
        rest = await reader.read()
        message = b"" if unstuffer.too_big or unstuffer.too_long else bytes(got)
        return message, unstuffer.too_big, unstuffer.too_long, rest

    return asyncio.run(run())


NEXT = b"QUIT\r\n"
MESSAGES = {
    "empty": b"",
    "one_empty_line": b"\r\n",
    "one_short_line": b"x\r\n",
    "dot_first": b".x\r\nbody\r\n",
    "stuffed": b"From: a@example.com\r\n\r\n..one\r\n. two\r\n...\r\nend.\r\n",
    "lone_stuffed_dot": b"a\r\n..\r\nb\r\n",
    "bare_lf": b"a\n.not stuffed\nb\r\n.\nstill data\r\n",
    "bare_cr": b"a\r.b\r\n\r\r\n",
    "short_lines": b"a\r\nb\r\n.\r\n..\r\n\r\n",
}


def _stream(message: bytes) -> bytes:
    stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line
                           for line in message.split(b"\r\n"))
    return stuffed + b".\r\n" + NEXT


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_cut_gives_the_message_and_leaves_the_next_command(name):
    message = MESSAGES[name]
    stream = _stream(message)
    assert line_by_line(stream) == (message, False, False, NEXT)
    for cut in range(1, len(stream)):
        assert bulk(stream, [cut]) == (message, False, False, NEXT), cut
    for first in range(1, len(stream)):
        for second in range(first + 1, min(len(stream), first + 7)):
            assert bulk(stream, [first, second]) == (message, False, False, NEXT)


def test_random_messages_and_cuts_match_the_line_by_line_reading():
    rng = random.Random(14)
    alphabet = [b"a", b".", b"\r\n", b"\n", b"\r", b"..", b"\r\n.", b"x" * 20]
    for _ in range(300):
        stream = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        stream += b"\r\n.\r\n" + NEXT
        expected = line_by_line(stream, size_limit=150)
        cuts = sorted(rng.sample(range(1, len(stream)), k=min(4, len(stream) - 1)))
        assert bulk(stream, cuts, size_limit=150, reader_limit=16) == expected, stream


def test_the_end_marker_split_in_every_way_across_reads():
    stream = b"line one\r\nline two\r\n.\r\n" + NEXT
    marker = stream.index(b"\r\n.\r\n")
    for a in range(marker, marker + 5):
        for b in range(a + 1, marker + 6):
            assert bulk(stream, [a, b]) == (b"line one\r\nline two\r\n", False, False, NEXT)


def test_dot_stuffing_at_chunk_boundaries_with_chunks_cut_by_the_reader_limit():
    message = b"".join(b"." * (i % 3) + b"y" * (i % 11) + b"\r\n" for i in range(200))
    stream = _stream(message)
    for limit in (5, 7, 16, 31):
        assert bulk(stream, [], reader_limit=limit) == (message, False, False, NEXT)


def test_over_the_size_limit_keeps_nothing_and_reads_to_the_end():
    message = b"From: a@example.com\r\n\r\n" + b"x" * 30 + b"\r\n"
    stream = _stream(message * 10)
    assert bulk(stream, [17, 200], size_limit=len(message) * 10 - 1) == (b"", True, False,
                                                                          NEXT)
    assert bulk(stream, [17, 200], size_limit=len(message) * 10)[:2] == (message * 10, False)


def test_a_line_over_the_length_limit_is_found_whatever_the_chunks():
    long_line = b"z" * (MAX_LINE + 1) + b"\r\n"
    for message in (long_line, b"a\r\n" + long_line + b"b\r\n", b"a\r\n" * 50 + long_line):
        stream = _stream(message)
        for limit in (8, 40, 4096):
            assert bulk(stream, [3], reader_limit=limit) == (b"", False, True, NEXT)
    fits = b"z" * (MAX_LINE - 1) + b"\r\n"  # the CR counts
    assert bulk(_stream(fits * 3), [], reader_limit=8) == (fits * 3, False, False, NEXT)
