"""Databases made for one benchmark run and dropped after it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text


@contextmanager
def postgresql_database(admin_url: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database on the server of ``admin_url``,
    dropped (connections and all) when the block ends."""
    name = f"ie_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def scratch_database(kind: str, directory: Path, admin_url: str | None) -> Iterator[str]:
    """A new database for one run: SQLite in ``directory`` (``kind`` "sqlite") or
    PostgreSQL through ``admin_url``."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'ie.db'}"
        return
    if admin_url is None:
        raise SystemExit("PostgreSQL needs an admin URL (--pg)")
    with postgresql_database(admin_url) as url:
        yield url
