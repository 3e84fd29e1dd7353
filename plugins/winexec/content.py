"""Bounded reading: the limits of one scan, and file contents read in capped chunks.

Nothing here ever reads a whole stream at once: a :class:`Content` pulls chunks of at most
:data:`CHUNK` bytes and stops at the per-file cap, and every byte pulled is charged to the
scan's :class:`Budget`.  A bound that is hit raises :class:`LimitReached`, which the
scanner turns into a finding, never into an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Reader = Callable[[int], bytes]
"""``read(n)``: up to about ``n`` more bytes (a few more are tolerated), ``b""`` at the end."""

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    max_depth: int
    max_entries: int
    max_total_bytes: int
    max_member_size: int


class LimitReached(Exception):
    """A bound was hit.  ``whole_scan``: the scan stops (total bytes, entries); otherwise
    only the file at hand is left uninspected (its size, its depth)."""

    def __init__(self, what: str, whole_scan: bool) -> None:
        super().__init__(what)
        self.what = what
        self.whole_scan = whole_scan


class Budget:
    """What one scan may spend: entries (MIME parts and archive members) and bytes."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.entries = 0
        self.bytes = 0

    def count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise LimitReached(f"more than {self.limits.max_entries} parts and archive "
                               "members", whole_scan=True)

    def spend(self, size: int) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_total_bytes:
            raise LimitReached(f"more than {self.limits.max_total_bytes} bytes to inspect",
                               whole_scan=True)


class Content:
    """The bytes of one file, pulled from ``read`` only as far as someone asks.

    A failing reader (corrupt compressed data, a truncated archive) ends the content
    early and leaves the reason in :attr:`error`.
    """

    def __init__(self, read: Reader, budget: Budget) -> None:
        self._read = read
        self._budget = budget
        self._cap = budget.limits.max_member_size
        self._buf = bytearray()
        self._eof = False
        self.error: str | None = None

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes (fewer if the file is shorter).

        Raises :class:`LimitReached` when ``size`` is beyond the per-file cap and the file
        really is that long.
        """
        if size > self._cap:
            self._fill(self._cap + 1)
            if len(self._buf) > self._cap:
                raise self._too_large()
        else:
            self._fill(size)
        return bytes(self._buf[:size])

    def whole(self) -> bytes:
        """Every byte, up to the per-file cap (:class:`LimitReached` beyond it)."""
        self._fill(self._cap + 1)
        if len(self._buf) > self._cap:
            raise self._too_large()
        return bytes(self._buf)

    def _too_large(self) -> LimitReached:
        return LimitReached(f"larger than {self._cap} bytes", whole_scan=False)

    def _fill(self, size: int) -> None:
        while not self._eof and len(self._buf) < size:
            try:
                chunk = self._read(min(CHUNK, size - len(self._buf)))
            except Exception as err:  # any decoder's failure on hostile data
                self.error = _describe(err)
                chunk = b""
            if not chunk:
                self._eof = True
                break
            self._budget.spend(len(chunk))
            self._buf += chunk


def _describe(err: Exception) -> str:
    text = " ".join(str(err).split())[:80]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
