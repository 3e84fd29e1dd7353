"""Group commit: the per-message writes of many messages in one transaction.

Every message writes a little (its send-limit records, its message-log row).  Done one
transaction each, concurrent messages queue for SQLite's write lock (or PostgreSQL's WAL
flush) and pay a transaction's fixed cost each.  :class:`GroupCommit` gives the writes of
one process to a single writer thread: it takes every piece of work waiting, runs them
in order in one transaction and commits once; each caller gets its own result (or
exception) only after that commit, so what a caller was told is written is durable
exactly as if it had committed alone.  At one message at a time a batch is one piece of
work: nothing waits for company.

Lock order.  A piece of work names the rows it will lock (``locks``: a lock kind, such
as send-limit objects, and ids); the writer locks the union of every batch's ids of a
kind in id order, with the locker registered for that kind, before it runs any work.
So a batch takes row locks in the same order as a single message does, and two batches
(two worker processes, two nodes) never wait on each other in a cycle.

Failure.  When a piece of work raises, the batch is rolled back and each piece is run
again alone, in its own transaction: the failing one gets its exception, the others
their results.  When locking or the commit fails, every caller of the batch gets that
error (nothing is run again: a commit whose answer was lost may have happened).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from ie_core.db.session import Database

T = TypeVar("T")
Locker = Callable[[Session, list[str]], object]
"""Locks the given ids' rows (sorted, no duplicates) until the transaction ends."""

MAX_BATCH = 64


@dataclass
class _Work:
    run: Callable[[Session], Any]
    locks: Mapping[str, Iterable[str]]
    done: Future[Any] = field(default_factory=Future)


class GroupCommit:
    """One writer thread per process for :meth:`run`'s work (started on first use, and
    again in a forked child)."""

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._max_batch = max_batch
        self._lockers: dict[str, Locker] = {}
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._start_lock = threading.Lock()

    def register_lock(self, kind: str, locker: Locker) -> None:
        """How rows of ``kind`` are locked (``SELECT ... FOR UPDATE`` in id order)."""
        self._lockers[kind] = locker

    def run(self, work: Callable[[Session], T],
            locks: Mapping[str, Iterable[str]] | None = None) -> T:
        """Run ``work`` in a shared transaction and return its result once that
        transaction committed; raises what ``work`` or the commit raised."""
        for kind in locks or {}:
            if kind not in self._lockers:
                raise KeyError(f"no locker registered for {kind!r}")
        item = _Work(work, locks or {})
        self._ensure_thread()
        self._queue.put(item)
        return item.done.result()  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the writer once the work already queued is done."""
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            self._queue.put(None)
            thread.join()
        self._thread = None

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            if self._pid != os.getpid():  # a forked child: the parent's queue is not ours
                self._queue = queue.SimpleQueue()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._write, name="ie-group-commit",
                                            daemon=True)
            self._thread.start()

    def _write(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Work]) -> None:
        try:
            results = self._transaction(batch)
        except _WorkFailed as failed:
            if len(batch) == 1:
                batch[0].done.set_exception(failed.error)
            else:
                for item in batch:
                    self._commit([item])
            return
        except Exception as err:
            for item in batch:
                item.done.set_exception(err)
            return
        for item, result in zip(batch, results, strict=True):
            item.done.set_result(result)

    def _transaction(self, batch: list[_Work]) -> list[Any]:
        wanted: dict[str, set[str]] = {}
        for item in batch:
            for kind, ids in item.locks.items():
                wanted.setdefault(kind, set()).update(ids)
        with self._db.writer_turn(), self._db.session() as s:
            for kind in sorted(wanted):
                if wanted[kind]:
                    self._lockers[kind](s, sorted(wanted[kind]))
            results = []
            for item in batch:
                try:
                    results.append(item.run(s))
                except Exception as err:
                    raise _WorkFailed(err) from err
            return results


class _WorkFailed(Exception):
    """A piece of work raised (not the database's locking or commit)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error
