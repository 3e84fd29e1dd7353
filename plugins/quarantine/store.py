"""The held messages' exact bytes on disk: one file per message, named by its UUID.

Writing: a temporary file in the same directory, fsync, rename, fsync the directory;
only then is the database row committed.  Deleting is the reverse: the row goes first,
then the file.  A file that no row names (a crash between the two steps) is removed by
:func:`sweep` once it is older than a grace period.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("ie.quarantine")

TMP_PREFIX = ".tmp-"
SWEEP_GRACE_SECONDS = 3600.0


class BlobStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, held_id: str) -> Path:
        # The name is always our own UUID, never anything a sender wrote.
        return self.directory / str(uuid.UUID(held_id))

    def write(self, held_id: str, raw: bytes) -> None:
        """Store ``raw`` durably under ``held_id``; raises ``OSError`` on any failure."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self.path(held_id)
        tmp = self.directory / f"{TMP_PREFIX}{uuid.uuid4()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(raw)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        self._fsync_dir()

    def read(self, held_id: str) -> bytes:
        return self.path(held_id).read_bytes()

    def delete(self, held_ids: Iterable[str]) -> None:
        """Remove files whose rows are already gone; a failure is left to the sweeper."""
        for held_id in held_ids:
            _unlink_quietly(self.path(held_id))

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def sweep(self, is_held: Callable[[str], bool],
              grace: float = SWEEP_GRACE_SECONDS) -> list[str]:
        """Remove files older than ``grace`` seconds that no held row names.

        ``is_held(id)`` is asked only for files old enough, so a message being written
        right now (file renamed, row not yet committed) is never touched.
        """
        removed: list[str] = []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return removed
        cutoff = time.time() - grace
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False) or entry.stat().st_mtime > cutoff:
                    continue
            except OSError:
                continue
            if not entry.name.startswith(TMP_PREFIX):
                try:
                    held_id = str(uuid.UUID(entry.name))
                except ValueError:
                    continue  # not ours: leave it alone
                if held_id != entry.name or is_held(held_id):
                    continue
            _unlink_quietly(Path(entry.path))
            removed.append(entry.name)
        if removed:
            log.info("event=quarantine_sweep removed=%d", len(removed))
        return removed


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        log.warning("event=quarantine_unlink_failed file=%s error=%s", path.name, err)
