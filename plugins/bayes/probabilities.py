"""Each token's spam probability, kept per process for the counts' current revision.

The same tokens come back message after message (header names, common words, the
sender's domains), so a classification mostly costs dictionary lookups: only tokens
this process has not scored since the last learn are read from the database.  A
learn changes the state's revision; the first classification that sees the new revision
starts an empty table, so no probability outlives the counts it came from by more than
the message that was being classified while the learn committed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

LIMIT = 500_000
"""Tokens kept per process (about 60 MB at the limit); past it the table starts again."""


class Probabilities:
    """Token hash -> probability (``None``: never learned) for one revision at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revision = -1
        self._values: dict[int, float | None] = {}

    def table(self, revision: int) -> Mapping[int, float | None]:
        """The table of ``revision`` (an empty one when the revision changed).  Entries
        are only ever added to a table, so what a caller found in it stays there."""
        with self._lock:
            if revision != self._revision or len(self._values) > LIMIT:
                self._values = {}
                self._revision = revision
            return self._values

    def add(self, revision: int, values: Mapping[int, float | None]) -> None:
        """Keep ``values`` if ``revision`` is still the current one."""
        with self._lock:
            if revision == self._revision:
                self._values.update(values)
