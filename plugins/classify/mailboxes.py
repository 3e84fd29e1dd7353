"""Training material from the server's own mail, for ``ie-cli learn --from-mailboxes``:
each account's Junk folder as spam, and the INBOX messages older than some days (mail the
user kept) as ham.  Maildir (Maildir++ ``.Junk`` or a ``Junk`` sub-folder) and mbox
(``Junk`` and ``INBOX`` files in a mail folder, or a spool file such as ``/var/mail/USER``
as INBOX); at most so many messages per mailbox, the newest first.
"""

from __future__ import annotations

import email.utils
import glob
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ie_plugins.classify.sources import MAX_MESSAGE, not_a_message, split_mbox


@dataclass(frozen=True)
class Mailbox:
    path: Path
    spam: bool
    maildir: bool

    @property
    def label(self) -> str:
        return "spam" if self.spam else "ham"


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def find(patterns: Sequence[str], junk: str) -> list[Mailbox]:
    """The mailboxes under the glob ``patterns``, each once, in a stable order."""
    found: dict[Path, Mailbox] = {}
    for pattern in patterns:
        for match in sorted(glob.glob(pattern)):
            for box in _mailboxes(Path(match), junk):
                found.setdefault(box.path, box)
    return list(found.values())


def _mailboxes(path: Path, junk: str) -> Iterator[Mailbox]:
    if _is_maildir(path):
        yield Mailbox(path, False, True)
        for name in (f".{junk}", junk):
            if _is_maildir(path / name):
                yield Mailbox(path / name, True, True)
    elif path.is_dir():
        if (path / junk).is_file():
            yield Mailbox(path / junk, True, False)
        for name in ("INBOX", "inbox"):
            if (path / name).is_file():
                yield Mailbox(path / name, False, False)
                break
    elif path.is_file() and path.name != junk:
        yield Mailbox(path, False, False)


def messages(box: Mailbox, keep_after: timedelta, limit: int, now: datetime) -> list[bytes]:
    """Up to ``limit`` messages of ``box``, newest first; for ham only those older than
    ``keep_after`` (the user had time to move spam to Junk)."""
    cutoff = now - keep_after
    dated = list(_maildir(box)) if box.maildir else list(_mbox(box))
    if not box.spam:
        dated = [(when, raw) for when, raw in dated if when is not None and when <= cutoff]
    dated.sort(key=lambda item: item[0] or datetime.min.replace(tzinfo=UTC), reverse=True)
    return [raw for _, raw in dated[:limit]]


def _maildir(box: Mailbox) -> Iterator[tuple[datetime | None, bytes]]:
    folders = ["cur", "new"] if box.spam else ["cur"]  # new/: not yet seen by the user
    for folder in folders:
        try:
            entries = list((box.path / folder).iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.name.startswith(".") or not entry.is_file() or \
                        entry.stat().st_size > MAX_MESSAGE:
                    continue
                raw = entry.read_bytes()
                when = datetime.fromtimestamp(entry.stat().st_mtime, UTC)
            except OSError:
                continue
            if not not_a_message(raw):
                yield when, raw


def _mbox(box: Mailbox) -> Iterator[tuple[datetime | None, bytes]]:
    try:
        data = box.path.read_bytes()
    except OSError:
        return
    for raw in split_mbox(data) if data.startswith(b"From ") else [data]:
        if not not_a_message(raw):
            yield _date(raw), raw


def _date(raw: bytes) -> datetime | None:
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    for line in head.splitlines():
        if line.lower().startswith(b"date:"):
            try:
                when = email.utils.parsedate_to_datetime(line[5:].decode("latin-1").strip())
            except (TypeError, ValueError, IndexError):
                return None
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None
