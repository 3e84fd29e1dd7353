"""A MIME reader over the raw bytes that never recurses and never copies a body.

Python's email parser builds the whole tree at once, recursively, and fails on messages
nested about a thousand levels deep; here an entity is an offset range into the message,
its headers are parsed alone (capped), multipart bodies are split lazily and bodies are
decoded on demand, in chunks.
"""

from __future__ import annotations

import binascii
import contextlib
import email.parser
import email.policy
import email.utils
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message

from ie_core.message import decode_header_value
from ie_plugins.winexec.content import Reader

MAX_HEADER_BYTES = 256 * 1024
"""Headers beyond this many bytes of one entity are not read."""

IDENTITY_ENCODINGS = frozenset({"", "7bit", "8bit", "binary"})
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_PAD_TO_EOL = re.compile(rb"[ \t]*(?:\r?\n|\Z)")
_NOT_BASE64 = bytes(b for b in range(256)
                    if not (chr(b).isascii() and (chr(b).isalnum() or chr(b) in "+/")))
_BASE64_SLICE = 64 * 1024


@dataclass
class Entity:
    """One MIME entity: its headers, and where its body lies in ``buf``."""

    buf: bytes
    body_start: int
    body_end: int
    content_type: str = "text/plain"
    boundary: str | None = None
    encoding: str = ""
    names: list[str] = field(default_factory=list)

    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]

    def reader(self) -> Reader:
        """The decoded body, read in chunks (base64 and quoted-printable undone)."""
        if self.encoding == "base64":
            return Base64Reader(self.buf, self.body_start, self.body_end).read
        if self.encoding == "quoted-printable":
            return io.BytesIO(binascii.a2b_qp(self.buf[self.body_start:self.body_end])).read
        return SliceReader(self.buf, self.body_start, self.body_end).read


def parse_entity(buf: bytes, start: int, end: int,
                 default_type: str = "text/plain") -> Entity:
    """Read the headers of the entity at ``buf[start:end]``; never raises on bad input."""
    if buf.startswith(b"\n", start, end) or buf.startswith(b"\r\n", start, end):
        header_end, body_start = start, buf.index(b"\n", start) + 1
    else:
        blank = _BLANK_LINE.search(buf, start, end)
        header_end, body_start = (blank.start(), blank.end()) if blank else (end, end)
    entity = Entity(buf, body_start, end, content_type=default_type)
    block = buf[start:min(header_end, start + MAX_HEADER_BYTES)]
    with contextlib.suppress(Exception):  # header syntax a sender made up: keep defaults
        _read_headers(entity, block, default_type)
    return entity


def _read_headers(entity: Entity, block: bytes, default_type: str) -> None:
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(block)
    headers.set_default_type(default_type)
    entity.content_type = headers.get_content_type()
    if entity.maintype == "multipart":
        boundary = headers.get_boundary()
        entity.boundary = boundary.strip() if boundary else None
    entity.encoding = str(headers.get("content-transfer-encoding", "")).strip().lower()
    entity.names = _names(headers)


def _names(headers: Message) -> list[str]:
    """Every file name the entity declares (mail clients show either of them)."""
    names = []
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        value = headers.get_param(param, None, header)
        if value is None:
            continue
        text = decode_header_value(email.utils.collapse_rfc2231_value(value)).strip()
        if text and text not in names:
            names.append(text)
    return names


def split_multipart(buf: bytes, start: int, end: int,
                    boundary: str) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` of each body part, found lazily; the preamble and epilogue are
    skipped, a missing close delimiter ends the last part at ``end``."""
    try:
        delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        delimiter = b"--" + boundary.encode("utf-8", "replace")
    part_start: int | None = None
    pos = start
    while True:
        found = buf.find(delimiter, pos, end)
        if found < 0:
            break
        pos = found + 1
        if found != start and buf[found - 1] != 0x0A:
            continue  # not at the start of a line
        after = found + len(delimiter)
        closing = buf.startswith(b"--", after, end)
        eol = _PAD_TO_EOL.match(buf, after + 2 if closing else after, end)
        if eol is None:
            continue  # a longer boundary that starts with ours
        if part_start is not None:
            yield part_start, _before_line_break(buf, part_start, found)
        if closing:
            return
        part_start = pos = eol.end()
    if part_start is not None and part_start < end:
        yield part_start, end


def _before_line_break(buf: bytes, start: int, delimiter: int) -> int:
    """The CRLF before a delimiter belongs to the delimiter, not to the part."""
    end = delimiter
    if end > start and buf[end - 1] == 0x0A:
        end -= 1
        if end > start and buf[end - 1] == 0x0D:
            end -= 1
    return end


class SliceReader:
    def __init__(self, buf: bytes, start: int, end: int) -> None:
        self._buf, self._pos, self._end = buf, start, end

    def read(self, size: int) -> bytes:
        chunk = self._buf[self._pos:min(self._pos + size, self._end)]
        self._pos += len(chunk)
        return chunk


class Base64Reader:
    """Lenient base64: characters outside the alphabet are skipped, a broken last group is
    padded or dropped.  Decodes slice by slice, so a large body is never copied whole."""

    def __init__(self, buf: bytes, start: int, end: int) -> None:
        self._buf, self._pos, self._end = buf, start, end
        self._carry = b""

    def read(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size and self._pos < self._end:
            want = min(_BASE64_SLICE, (size - len(out)) * 4 // 3 + 4)
            raw = self._buf[self._pos:min(self._pos + want, self._end)]
            self._pos += len(raw)
            chars = self._carry + raw.translate(None, _NOT_BASE64)
            usable = len(chars) - len(chars) % 4
            out += binascii.a2b_base64(chars[:usable])
            self._carry = chars[usable:]
        if self._pos >= self._end and self._carry:
            tail, self._carry = self._carry, b""
            if len(tail) > 1:  # a single leftover character carries no whole byte
                out += binascii.a2b_base64(tail + b"=" * (-len(tail) % 4))
        return bytes(out)
