"""Engine and sessions: SQLite (WAL) by default, PostgreSQL for several nodes."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ie_core.db.groupcommit import GroupCommit

SQLITE_BUSY_TIMEOUT_MS = 15000
log = logging.getLogger("ie.db")


class DatabaseGone(SQLAlchemyError):
    """The SQLite file was deleted or replaced while this process had it open: writes
    would go to a file nobody can read again, so every session refuses instead."""


class DatabaseBusy(SQLAlchemyError):
    """Another process's writer kept its turn longer than the busy timeout."""


class Database:
    """Owns the engine; ``with db.session() as s:`` commits on success, rolls back on error."""

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        self._file: Path | None = None
        self._file_id: tuple[int, int] | None = None
        self._gone_logged = False
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if url.startswith("sqlite"):
            self._file = _make_sqlite_dir(url)
            if self._file is not None:
                info = self._file.stat()
                self._file_id = (info.st_dev, info.st_ino)
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                      "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = self.engine.execution_options(ie_read_only=True)
        self._reader = sessionmaker(self._read_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def check_file(self) -> None:
        """Raise :class:`DatabaseGone` when the SQLite file is no longer the one opened
        (one ``stat``; nothing for PostgreSQL)."""
        if self._file is None:
            return
        try:
            info = self._file.stat()
            same = (info.st_dev, info.st_ino) == self._file_id
        except FileNotFoundError:
            same = False
        if same:
            return
        if not self._gone_logged:
            self._gone_logged = True
            log.error("event=database_gone path=%s: the database file was removed or "
                      "replaced; answering 451 until ie is restarted", self._file)
        raise DatabaseGone(f"the database file {self._file} was removed or replaced while "
                           "ie had it open; restart ie-filterd")

    @contextmanager
    def session(self) -> Iterator[Session]:
        self.check_file()
        session = self._factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session that only reads: on SQLite it does not take the write lock, so a
        lookup on the per-message path never queues behind (or blocks) the writers."""
        self.check_file()
        session = self._reader()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """What :meth:`reading` is without an ORM session: a connection for Core
        statements (the per-message lookups, where a session's own cost shows)."""
        self.check_file()
        with self._read_engine.connect() as conn:
            try:
                yield conn
            finally:
                conn.rollback()

    @contextmanager
    def writer_turn(self, timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> Iterator[None]:
        """Wait for this process's turn to write (SQLite file only; nothing else).

        SQLite's own wait for its write lock sleeps in steps of up to 100 ms, however
        soon the lock is free; the writers of the message path (one per worker process,
        :attr:`group`) take turns on an ``flock`` beside the database instead, asked for
        every millisecond.  Like SQLite's wait it gives up after ``timeout`` seconds
        (:class:`DatabaseBusy`: the messages waiting get a 451), so a writer that is
        stopped while it holds its turn cannot hold up the others for ever."""
        if self._file is None:
            yield
            return
        fd = os.open(f"{self._file}-writer", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise DatabaseBusy(f"another writer of {self._file} held it for "
                                           f"{timeout:g} s") from None
                    time.sleep(0.001)
            yield
        finally:
            os.close(fd)  # releases the lock

    @cached_property
    def group(self) -> GroupCommit:
        """The per-message writes' shared transactions (:mod:`ie_core.db.groupcommit`)."""
        return GroupCommit(self)

    def dispose(self) -> None:
        if "group" in self.__dict__:
            self.group.close()
        self.engine.dispose()


def describe_error(err: SQLAlchemyError) -> str:
    """One line for an admin's terminal or log: what the database said, without the SQL
    statement, its parameters or SQLAlchemy's link to its documentation."""
    detail = str(err.orig) if isinstance(err, DBAPIError) else str(err)
    first = next((line.strip() for line in detail.splitlines() if line.strip()),
                 type(err).__name__)
    return f"database error: {first}"


def _make_sqlite_dir(url: str) -> Path | None:
    """The database file's directory, and the file itself created owner-only (SQLite
    gives its -wal and -shm files the same mode); the file, or ``None`` in memory."""
    path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
    if not path or path == ":memory:":
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    return Path(path)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The stdlib driver's own transaction handling is switched off so that "begin"
    # below is the only BEGIN issued (SQLAlchemy's documented recipe).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN: read-then-write transactions (counters, releases)
    # then serialise instead of failing with "database is locked" on upgrade.  A
    # read-only session (Database.reading) begins a plain, deferred transaction.
    read_only = conn.get_execution_options().get("ie_read_only")
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def ensure_private(path: Path) -> None:
    """Create ``path`` (a directory) readable and writable by its owner only.

    A group search bit set on purpose (``enable-incoming`` gives the mail user's group
    passage to the learn spool inside it) is kept; every other bit is removed.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700 | (path.stat().st_mode & 0o010))
