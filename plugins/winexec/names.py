"""File names as senders wrote them: decoded safely, compared, shown; never used as paths."""

from __future__ import annotations

import email.header
import re
from collections.abc import Iterable

_PATH_SEPARATORS = re.compile(r"[\\/]")
# Windows ignores trailing dots and spaces: "setup.exe. " runs as setup.exe.
_WINDOWS_IGNORED_TAIL = ". \t\r\n\x00"
DISPLAY_MAX = 80


def decode_name(value: str) -> str:
    """A MIME file name as text: RFC 2047 encoded words decoded, raw 8-bit bytes read as
    UTF-8; anything undecodable becomes U+FFFD.  Never raises."""
    text = _unescape_raw_bytes(value)
    try:
        chunks = email.header.decode_header(text)
    except Exception:  # hostile input: keep the text as it came
        return text
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        try:
            out.append(chunk.decode(charset or "ascii", errors="replace"))
        except LookupError:  # unknown charset
            out.append(chunk.decode("latin-1"))
    return "".join(out)


def _unescape_raw_bytes(text: str) -> str:
    # the compat32 parser keeps 8-bit header bytes as surrogate escapes
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def normalise_extensions(configured: Iterable[str]) -> tuple[str, ...]:
    """``["EXE", ".scr"]`` -> ``(".exe", ".scr")``; empty entries are dropped."""
    out = []
    for ext in configured:
        ext = ext.strip().lower()
        if ext:
            out.append(ext if ext.startswith(".") else "." + ext)
    return tuple(out)


def risky_extension(name: str, extensions: tuple[str, ...]) -> str | None:
    """The listed extension ``name`` ends with, as Windows would read the name."""
    base = _PATH_SEPARATORS.split(name)[-1].rstrip(_WINDOWS_IGNORED_TAIL).lower()
    for ext in extensions:
        if base.endswith(ext):
            return ext
    return None


def display(name: str) -> str:
    """A name fit for a log line or a detail: printable, bounded in length."""
    text = "".join(c if c.isprintable() else "?" for c in name)
    return text if len(text) <= DISPLAY_MAX else text[:DISPLAY_MAX - 3] + "..."
