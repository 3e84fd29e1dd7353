"""DATA received in bulk: the end marker found by the stream reader, dot-unstuffing
done per chunk instead of per line.

aiosmtpd reads DATA one line at a time (a ``readuntil`` and a list append for every
line), which costs more than everything else the bare relay does.  Here the stream
reader looks for the end marker ``CRLF . CRLF`` itself (C code), and each chunk it hands
over is unstuffed with one ``bytes.replace``.  What the client sends after the marker
(the next command) stays in the reader, untouched.

:class:`Unstuffer` is the pure part (chunks in, message bytes out, sizes and line
lengths checked); :func:`receive` drives it from an :class:`asyncio.StreamReader`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

END = b"\r\n.\r\n"
_PREFIXES = (b"\r\n.", b"\r\n", b"\r")
"""The proper prefixes of the end marker, longest first."""


class Unstuffer:
    """Turns the raw bytes of DATA, handed over in any chunks, into the message:
    the first dot of every line that starts with one removed (RFC 5321 4.5.2), line ends
    kept as received (a bare LF is data, not a line end).

    ``received`` counts the raw bytes (as aiosmtpd counts them for its size limit);
    ``too_big`` and ``too_long`` say whether the size limit or the line length limit
    (a line longer than ``max_line`` bytes) was passed.  The caller feeds the data up
    to the end marker's first CRLF and leaves the final ``.CRLF`` out.
    """

    def __init__(self, size_limit: int, max_line: int) -> None:
        self.size_limit = size_limit
        self.max_line = max_line
        self.received = 0
        self.too_big = False
        self.too_long = False
        self._line = 0  # bytes of the current line so far (since the last LF)
        self._at_line_start = True
        self._carry = b""  # a trailing CR, kept until the next chunk says what follows

    def feed(self, chunk: bytes) -> bytes:
        """The message bytes ``chunk`` completes (possibly fewer, a CR waits)."""
        self.received += len(chunk)
        if self.size_limit and self.received > self.size_limit:
            self.too_big = True
        self._check_lines(chunk)
        data = self._carry + chunk
        self._carry = b""
        if data.endswith(b"\r"):
            self._carry, data = b"\r", data[:-1]
        if not data:
            return b""
        at_start = self._at_line_start
        self._at_line_start = data.endswith(b"\r\n")
        if at_start and data.startswith(b"."):
            data = data[1:]
        return data.replace(b"\r\n.", b"\r\n")

    def uncount(self, size: int) -> None:
        """Take back ``size`` bytes fed that turned out to be the end marker's."""
        self.received -= size
        self.too_big = bool(self.size_limit and self.received > self.size_limit)

    def finish(self) -> bytes:
        """What is still held back (called at the end marker)."""
        data, self._carry = self._carry, b""
        return data

    def _check_lines(self, chunk: bytes) -> None:
        first = chunk.find(b"\n")
        if first < 0:
            self._line += len(chunk)
        else:
            longest = self._line + first
            if len(chunk) > self.max_line:  # a whole line may lie inside this chunk
                longest = max(longest, *(len(x) for x in chunk[first + 1:].split(b"\n")))
            self._line = len(chunk) - chunk.rfind(b"\n") - 1
            if longest > self.max_line:
                self.too_long = True
        if self._line > self.max_line:
            self.too_long = True


async def receive(reader: asyncio.StreamReader, unstuffer: Unstuffer,
                  write: Callable[[bytes], Awaitable[None]]) -> None:
    """Read DATA up to the end marker, handing each piece of the message to ``write``
    (nothing once a limit was passed: the rest is read and dropped).

    The end marker's leading CRLF may be the last line end of what was already read (an
    empty message, or a last line read on its own): while what was read ends in a prefix
    of the marker, exactly the bytes that would complete it are read, so the reader never
    waits for bytes past the marker.  After that the marker cannot start in what was
    read, and ``readuntil`` finds it; a chunk cut by the reader's limit leaves the
    marker's length minus one in the reader, so a marker is never split either."""
    tail = b"\r\n"  # DATA starts at a line start
    while True:
        prefix = next((p for p in _PREFIXES if tail.endswith(p)), b"")
        if not prefix:
            break
        more = await reader.readexactly(len(END) - len(prefix))
        if prefix + more == END:
            if prefix.endswith(b"."):  # the marker's dot was fed: not message data
                unstuffer.uncount(1)
            await _pass(unstuffer, write, more[:-3])
            await _pass(unstuffer, write, unstuffer.finish(), raw=False)
            return
        await _pass(unstuffer, write, more)
        tail = (tail + more)[-4:]
    while True:
        try:
            chunk = await reader.readuntil(END)
        except asyncio.LimitOverrunError as err:
            await _pass(unstuffer, write, await reader.read(err.consumed))
            continue
        await _pass(unstuffer, write, chunk[:-3])  # the message ends with the marker's CRLF
        await _pass(unstuffer, write, unstuffer.finish(), raw=False)
        return


async def _pass(unstuffer: Unstuffer, write: Callable[[bytes], Awaitable[None]],
                data: bytes, raw: bool = True) -> None:
    out = unstuffer.feed(data) if raw else data
    if out and not (unstuffer.too_big or unstuffer.too_long):
        await write(out)
