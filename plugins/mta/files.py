"""Changing configuration files safely: atomic writes, backups, rollback.

A :class:`FileChange` writes several files (each one atomically: temporary file in the same
directory, fsync, rename, keeping the owner and mode), copies every previous version to the
backup directory first, and can put all of them back if the MTA's check fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename, keeping the owner and mode of the file
    being replaced (a new file is 0644)."""
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".ie-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if st is not None:
            os.chmod(tmp, st.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(tmp, st.st_uid, st.st_gid)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class FileChange:
    """Writes that can be rolled back together.  ``backup_dir`` receives a copy of every
    file before its first change (``NAME.YYYYmmddTHHMMSS``).  A new file's missing parent
    directories are created (0755) and, on rollback, removed again."""

    backup_dir: Path
    stamp: str
    _originals: dict[Path, bytes | None] = field(default_factory=dict)
    _made_dirs: list[Path] = field(default_factory=list)
    backups: list[Path] = field(default_factory=list)

    def write(self, path: Path, data: bytes) -> None:
        if path not in self._originals:
            try:
                self._originals[path] = path.read_bytes()
            except FileNotFoundError:
                self._originals[path] = None
                self._make_parents(path.parent)
            if self._originals[path] is not None:
                self.backups.append(self._backup(path))
        atomic_write(path, data)

    def _make_parents(self, directory: Path) -> None:
        missing = [d for d in (directory, *directory.parents) if not d.exists()]
        for d in reversed(missing):
            d.mkdir(mode=0o755)
            d.chmod(0o755)  # whatever the umask
            self._made_dirs.append(d)

    def remove(self, path: Path) -> None:
        if path not in self._originals:
            self._originals[path] = path.read_bytes()
            self.backups.append(self._backup(path))
        path.unlink()

    def _backup(self, path: Path) -> Path:
        self.backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.backup_dir / f"{path.name}.{self.stamp}"
        n = 1
        while target.exists():
            target = self.backup_dir / f"{path.name}.{self.stamp}.{n}"
            n += 1
        shutil.copy2(path, target)
        return target

    @property
    def changed(self) -> list[Path]:
        return list(self._originals)

    def rollback(self) -> None:
        """Put every file back as it was before this change."""
        for path, data in self._originals.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, data)
        for directory in reversed(self._made_dirs):
            with contextlib.suppress(OSError):  # not empty: someone else uses it now
                directory.rmdir()
