"""Header edits on the exact message bytes: remove fields by name, prepend new ones,
put text in front of a field's value.

The body and every header we do not touch stay byte-for-byte as received; the email
package never re-serialises a message.
"""

from __future__ import annotations

import email.header
import re
from collections.abc import Callable, Iterable

_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_BLANK_LINE = re.compile(rb"\n\r?\n")  # a line end, then an empty line
_VALUE_START = re.compile(rb"^[^:]*:[ \t]*")


def split(raw: bytes) -> tuple[bytes, bytes]:
    """(header block including its final line end, rest starting at the blank line)."""
    end = header_end(raw)
    return raw[:end], raw[end:]


def header_end(raw: bytes) -> int:
    """Where the header block ends: after the line end before the first blank line (a
    line of only CRLF or LF, as the email package sees it); ``len(raw)`` without a blank
    line, 0 when ``raw`` starts with one.  The search stops at that blank line, so a big
    body costs nothing."""
    if raw.startswith((b"\r\n", b"\n")):
        return 0
    blank = _BLANK_LINE.search(raw)
    return len(raw) if blank is None else blank.start() + 1


def line_ending(raw: bytes) -> bytes:
    nl = raw.find(b"\n")
    return b"\r\n" if nl > 0 and raw[nl - 1:nl] == b"\r" else b"\n"


def _fields(block: bytes) -> list[bytes]:
    """Header fields with their continuation lines, each ending in its line end."""
    fields: list[bytes] = []
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def field_name(field: bytes) -> str | None:
    m = _FIELD_NAME.match(field)
    return m.group(1).decode("ascii").lower() if m else None


OUR_PREFIX = "x-ie-"


def is_ours(name: str) -> bool:
    """A header name only ie writes (``X-IE-*``): a copy that arrives with a message was
    written by its sender and is removed before the message leaves (delivered or
    released)."""
    return name.lower().startswith(OUR_PREFIX)


def values(raw: bytes, name: str) -> list[str]:
    """Every ``name`` field's value, unfolded, in order, read from the exact header block.

    Unlike the email package this never stops early at a line it finds malformed (``Foo
    :bar``), so a header our MTA appended below such a line is still found.  Bytes
    outside ASCII are read as Latin-1 (a value is compared, never trusted for more).
    """
    wanted = name.lower()
    found = []
    for field in _fields(raw[:header_end(raw)]):
        if field_name(field) == wanted:
            value = field.split(b":", 1)[1]
            found.append(" ".join(value.decode("latin-1").split()))
    return found


def remove(raw: bytes, drop: Callable[[str], bool]) -> bytes:
    """Remove every header field whose lower-cased name ``drop`` accepts."""
    head, rest = split(raw)
    kept = [f for f in _fields(head) if not ((n := field_name(f)) and drop(n))]
    return b"".join(kept) + rest


def prepend(raw: bytes, headers: Iterable[tuple[str, str]]) -> bytes:
    """Put ``headers`` above the existing ones, in the message's own line ending.

    Values are stripped of control characters so nothing can inject a header line.
    """
    nl = line_ending(raw)
    lines = b"".join(
        f"{_UNSAFE.sub(' ', name)}: {_UNSAFE.sub(' ', value)}".encode() + nl
        for name, value in headers)
    return lines + raw


def prefix_value(raw: bytes, name: str, text: str) -> bytes:
    """``raw`` with ``text`` and a space put in front of the first ``name`` field's value
    (an RFC 2047 word when ``text`` is not ASCII); the field is added on top when there
    is none.  Everything else stays byte-for-byte."""
    clean = _UNSAFE.sub(" ", text)
    encoded = (clean.encode("ascii") if clean.isascii()
               else email.header.Header(clean, "utf-8").encode().encode("ascii"))
    head, rest = split(raw)
    fields = _fields(head)
    for i, field in enumerate(fields):
        if field_name(field) == name.lower():
            start = _VALUE_START.match(field)
            at = start.end() if start else len(field)
            fields[i] = field[:at] + encoded + b" " + field[at:]
            return b"".join(fields) + rest
    return _UNSAFE.sub(" ", name).encode() + b": " + encoded + line_ending(raw) + raw
