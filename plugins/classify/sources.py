"""Where ``ie-cli learn`` reads messages: single files, Maildir folders, mbox files, stdin.

- A directory with ``cur/`` or ``new/`` is a Maildir: every file in those two.  Any other
  directory: every regular file in it (not recursive; hidden files skipped).
- A file whose first line is an mbox ``From `` line is split at each later ``From `` line
  that follows an empty line (mboxo/mboxrd); a single message with such a first line is
  simply one message.  Other files are one message each.
- ``-`` is standard input, read the same way as a file.

Problems (unreadable, empty, not a message) are reported per source, never raised, so a
bad file does not stop the others.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_MESSAGE = 64 * 1024 * 1024
_FROM_LINE = re.compile(rb"^From \S+.*\d\d:\d\d.*$")
_HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")


@dataclass(frozen=True)
class Item:
    """One message read, or one problem (``raw`` is ``None`` and ``error`` says why)."""

    where: str
    raw: bytes | None = None
    error: str = ""


def read_sources(names: tuple[str, ...]) -> Iterator[Item]:
    for name in names or ("-",):
        if name == "-":
            yield from _split(name, sys.stdin.buffer.read(MAX_MESSAGE + 1))
            continue
        path = Path(name)
        if path.is_dir():
            yield from _directory(path)
        else:
            yield from _file(path)


def count_files(names: tuple[str, ...]) -> int | None:
    """How many files ``names`` hold (an mbox counts as one): for the progress line's time
    left; ``None`` for standard input."""
    total = 0
    for name in names or ("-",):
        path = Path(name)
        if name == "-":
            return None
        if path.is_dir():
            folders = [path / s for s in ("cur", "new") if (path / s).is_dir()] or [path]
            for folder in folders:
                try:
                    total += sum(1 for e in folder.iterdir() if not e.name.startswith("."))
                except OSError:
                    continue
        else:
            total += 1
    return total


def _directory(path: Path) -> Iterator[Item]:
    maildir = [path / sub for sub in ("cur", "new") if (path / sub).is_dir()]
    folders = maildir or [path]
    found = False
    for folder in folders:
        try:
            entries = sorted(folder.iterdir())
        except OSError as err:
            yield Item(str(folder), error=err.strerror or str(err))
            continue
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file():
                continue
            found = True
            yield from _file(entry)
    if not found and not maildir:
        yield Item(str(path), error="no messages in this directory")


def _file(path: Path) -> Iterator[Item]:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_MESSAGE + 1)
    except OSError as err:
        yield Item(str(path), error=err.strerror or str(err))
        return
    yield from _split(str(path), data)


def _split(where: str, data: bytes) -> Iterator[Item]:
    if len(data) > MAX_MESSAGE:
        yield Item(where, error=f"larger than {MAX_MESSAGE} bytes")
        return
    messages = split_mbox(data) if data.startswith(b"From ") else [data]
    for index, raw in enumerate(messages):
        label = where if len(messages) == 1 else f"{where}#{index + 1}"
        problem = not_a_message(raw)
        yield Item(label, error=problem) if problem else Item(label, raw)


def split_mbox(data: bytes) -> list[bytes]:
    """Messages of an mbox file, each without its ``From `` line."""
    messages: list[bytes] = []
    current: list[bytes] = []
    previous_blank = True
    for line in data.splitlines(keepends=True):
        if previous_blank and _FROM_LINE.match(line.rstrip(b"\r\n")):
            if current:
                messages.append(b"".join(current))
            current = []
        else:
            current.append(line)
        previous_blank = not line.strip()
    if current:
        messages.append(b"".join(current))
    return messages


def not_a_message(raw: bytes) -> str:
    """Why ``raw`` is not a message, or ``""``."""
    if not raw.strip():
        return "empty"
    lines = raw.lstrip(b"\r\n").split(b"\n", 2)
    first = lines[1] if lines[0].startswith(b"From ") and len(lines) > 1 else lines[0]
    if not _HEADER_LINE.match(first):
        return "not a mail message (no header at the top)"
    return ""
