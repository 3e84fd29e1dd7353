"""Caches of read-mostly data that stay exact across worker processes, nodes sharing
PostgreSQL and ``ie-cli``: each kind of data has a change counter
(:class:`~ie_core.db.models.ChangeCounter`) that every write of it increments in the
same transaction (:func:`bump`).

Rows written through the ORM count themselves: a model registered with :func:`track` bumps
its counter in every flush that adds, changes or deletes one of its rows.  A bulk
statement (``delete(...)``, ``update(...)``) must call :func:`bump` itself.

The message path reads all counters once per message (:meth:`ChangeCounters.refresh`,
one query without SQLite's write lock) before its first lookup; a :class:`Cached` value
is loaded again when its counter moved.  So a change committed before a message arrives
applies to that message, on every node, while an unchanged whitelist or domain map costs
no query at all.  Outside the message path (background services, commands) the counters
are read again when older than ``max_age`` seconds, or at once after a change this
process committed itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Generic, TypeVar

from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ie_core.db.models import ChangeCounter
from ie_core.db.session import Database

T = TypeVar("T")
_committed_here = [0]
"""Changes this process committed: its counters are read again after each."""


_tracked: dict[type, str] = {}
_ALL = select(ChangeCounter.name, ChangeCounter.value)


def track(model: type, name: str) -> None:
    """Make every ORM write of ``model``'s rows bump the counter ``name``."""
    _tracked[model] = name


def bump(session: Session, name: str) -> None:
    """Count one change of ``name``'s data, in the transaction that changes it."""
    conn = session.connection()
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    table = ChangeCounter.__table__
    insert = dialect.insert(table).values(name=name, value=1)
    conn.execute(insert.on_conflict_do_update(
        index_elements=[table.c.name], set_={"value": table.c.value + 1}))
    event.listen(session, "after_commit", _committed, once=True)


@event.listens_for(Session, "after_flush")
def _count_tracked(session: Session, _context: object) -> None:
    if not _tracked:
        return
    names = {_tracked[type(obj)] for obj in (*session.new, *session.dirty, *session.deleted)
             if type(obj) in _tracked}
    for name in sorted(names):
        bump(session, name)


def _committed(_session: Session) -> None:
    _committed_here[0] += 1


class ChangeCounters:
    """The counters as this process last read them."""

    def __init__(self, db: Database, max_age: float = 1.0) -> None:
        self._db = db
        self._max_age = max_age
        self._values: dict[str, int] = {}
        self._read_at = float("-inf")
        self._seen_here = -1
        self._lock = threading.Lock()

    def refresh(self, conn: Connection | None = None) -> None:
        """Read every counter (one query; on ``conn`` when given)."""
        now, here = time.monotonic(), _committed_here[0]
        with nullcontext(conn) if conn is not None else self._db.read_connection() as c:
            values = {n: v for n, v in c.execute(_ALL)}
        with self._lock:
            if now >= self._read_at:
                self._values, self._read_at, self._seen_here = values, now, here

    def value(self, name: str) -> int:
        if time.monotonic() - self._read_at > self._max_age \
                or self._seen_here != _committed_here[0]:
            self.refresh()
        return self._values.get(name, 0)


class Cached(Generic[T]):
    """``load()``'s result, loaded again when the counter ``name`` moved.  The counter
    is read before loading, so a change made during the load is seen next time."""

    def __init__(self, counters: ChangeCounters, name: str, load: Callable[[], T]) -> None:
        self._counters = counters
        self._name = name
        self._load = load
        self._lock = threading.Lock()
        self._entry: tuple[int, T] | None = None

    def get(self) -> T:
        counter = self._counters.value(self._name)
        entry = self._entry
        if entry is not None and entry[0] == counter:
            return entry[1]
        with self._lock:
            entry = self._entry
            if entry is not None and entry[0] == counter:
                return entry[1]
            value = self._load()
            self._entry = (counter, value)
            return value
