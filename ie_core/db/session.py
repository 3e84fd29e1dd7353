"""Engine and sessions: SQLite (WAL) by default, PostgreSQL for several nodes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 15000


class Database:
    """Owns the engine; ``with db.session() as s:`` commits on success, rolls back on error."""

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if url.startswith("sqlite"):
            _make_sqlite_dir(url)
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                      "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def describe_error(err: SQLAlchemyError) -> str:
    """One line for an admin's terminal or log: what the database said, without the SQL
    statement, its parameters or SQLAlchemy's link to its documentation."""
    detail = str(err.orig) if isinstance(err, DBAPIError) else str(err)
    first = next((line.strip() for line in detail.splitlines() if line.strip()),
                 type(err).__name__)
    return f"database error: {first}"


def _make_sqlite_dir(url: str) -> None:
    """The database file's directory, and the file itself created owner-only (SQLite
    gives its -wal and -shm files the same mode)."""
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


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
    # then serialise instead of failing with "database is locked" on upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def ensure_private(path: Path) -> None:
    """Create ``path`` (a directory) readable and writable by its owner only.

    A group search bit set on purpose (``enable-incoming`` gives the mail user's group
    passage to the learn spool inside it) is kept; every other bit is removed.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700 | (path.stat().st_mode & 0o010))
