"""Holding fails loudly, and leaves nothing behind, when the disk or the database fails."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.exc import OperationalError

from ie_plugins.quarantine.models import HeldMessage
from tests.unit.test_quarantine import hold, message


@contextmanager
def tmpfs(path: Path, size: str, readonly: bool = False):
    """A real small file system mounted at ``path`` (we are root in the test)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0700" + (",ro" if readonly else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def held_rows(app) -> list[HeldMessage]:
    with app.db.session() as s:
        return list(s.scalars(select(HeldMessage)).all())


def test_full_disk_holds_nothing_and_raises(make_app, db_url):
    app = make_app(db_url=db_url)
    qdir = app.data_dir / "quarantine"
    with tmpfs(qdir, "64k"):
        with pytest.raises(OSError) as err:
            hold(app, raw=message(size=200 * 1024))
        assert err.value.errno == errno.ENOSPC
        assert held_rows(app) == [] and os.listdir(qdir) == []  # no half-written file
        small = hold(app, raw=message(size=1024))  # still works for what fits
        assert [r.id for r in held_rows(app)] == [small]


def test_read_only_directory_raises(make_app, db_url):
    app = make_app(db_url=db_url)
    with tmpfs(app.data_dir / "quarantine", "1m", readonly=True):
        with pytest.raises(OSError) as err:
            hold(app)
        assert err.value.errno == errno.EROFS
    assert held_rows(app) == []


FSIZE_SCRIPT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from ie_core import ManualClock, create_app
from tests.unit.test_quarantine import hold, message
app = create_app(sys.argv[1], clock=ManualClock(), overrides={
    "ie.data_dir": sys.argv[2], "ie.database_url": sys.argv[3]})
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
try:
    hold(app, raw=message(size=2 << 20))
except OSError as err:
    print("errno", err.errno)
"""


def test_file_size_limit_holds_nothing(make_app, db_url, tmp_path):
    """The same fault without mount rights: RLIMIT_FSIZE in a child process."""
    app = make_app(db_url=db_url)
    out = subprocess.run(
        [sys.executable, "-c", FSIZE_SCRIPT, str(app.config.path), str(app.data_dir),
         app.config.database_url], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == f"errno {errno.EFBIG}", out.stderr
    assert held_rows(app) == []
    assert os.listdir(app.data_dir / "quarantine") == []


@contextmanager
def database_locked(app):
    """Another connection holds the lock the hold transaction needs; ours waits briefly."""
    url = app.config.database_url
    app.db.dispose()
    if app.db.is_sqlite:
        event.listen(app.db.engine, "connect",
                     lambda conn, _r: conn.execute("PRAGMA busy_timeout=300"))
        other = create_engine(url, connect_args={"isolation_level": None})
        statement = "BEGIN IMMEDIATE"
    else:
        event.listen(app.db.engine, "connect", lambda conn, _r: _pg_lock_timeout(conn))
        other = create_engine(url)
        statement = "LOCK TABLE quarantine_accounts IN ACCESS EXCLUSIVE MODE"
    conn = other.connect()
    if app.db.is_sqlite:
        conn.exec_driver_sql(statement)
    else:
        conn.begin()
        conn.execute(text(statement))
    try:
        yield
    finally:
        conn.rollback() if not app.db.is_sqlite else conn.exec_driver_sql("ROLLBACK")
        conn.close()
        other.dispose()


def _pg_lock_timeout(dbapi_conn) -> None:
    with dbapi_conn.cursor() as cur:
        cur.execute("SET lock_timeout = '300ms'")
    dbapi_conn.commit()


def test_locked_database_raises_and_removes_the_file(make_app, db_url):
    app = make_app(db_url=db_url)
    first = hold(app)  # also warms the settings cache, so the write is what waits
    with database_locked(app):
        with pytest.raises(OperationalError):
            hold(app)
        assert os.listdir(app.data_dir / "quarantine") == [first]  # the new file is gone
    assert [r.id for r in held_rows(app)] == [first]
    assert hold(app)  # works again once the lock is gone
