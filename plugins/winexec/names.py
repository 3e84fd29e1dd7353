"""File names as senders wrote them: decoded safely, compared, shown; never used as paths."""

from __future__ import annotations

import re
from collections.abc import Iterable

_PATH_SEPARATORS = re.compile(r"[\\/]")
# Windows ignores trailing dots and spaces: "setup.exe. " runs as setup.exe.
_WINDOWS_IGNORED_TAIL = ". \t\r\n\x00"
DISPLAY_MAX = 80


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
