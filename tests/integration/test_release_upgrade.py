"""A database made by the previous release (0.1.0, every revision in core's folder)
upgrades onto the revisions that now live next to their plugins, on SQLite and
PostgreSQL, and keeps its data.  The dumps in tests/fixtures/release_db were written by
that release's ``ie-config db upgrade``, ``ie-cli whitelist sender add partner.example``
and ``ie-cli am server-settings set --account 200``."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text

from ie_core.db import Database, migrate
from tests.conftest import PG_ADMIN_URL

DUMPS = Path(__file__).resolve().parents[1] / "fixtures" / "release_db"
OLD_HEADS = {"0002_quarantine", "0003_ratelimit", "0004_bayes", "0005_incoming",
             "0006_notify", "0007_whitelist", "0008_message_log_digest"}


@pytest.fixture(params=["sqlite", "postgresql"])
def release_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "old.db"
        with sqlite3.connect(path) as con:
            con.executescript((DUMPS / "ie-0.1.0.sqlite.sql").read_text())
        db = Database(f"sqlite:///{path}")
        yield db
        db.dispose()
        return
    name = f"ie_release_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
        c.execute((DUMPS / "ie-0.1.0.postgresql.sql").read_text().encode())
    db = Database(url)
    yield db
    db.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_previous_release_database_upgrades_and_keeps_its_data(release_db):
    assert migrate.current_heads(release_db) == OLD_HEADS
    migrate.upgrade(release_db)
    migrate.check(release_db)
    assert migrate.current_heads(release_db) == migrate.script_heads(release_db)
    with release_db.engine.connect() as conn:
        entries = conn.execute(text("SELECT kind, value FROM whitelist_entries")).all()
        settings = dict(conn.execute(text("SELECT key, value FROM settings")).all())
    assert [tuple(e) for e in entries] == [("sender", "partner.example")]
    assert settings == {"ratelimit.server.account": 200}


def test_a_revision_of_an_uninstalled_plugin_is_named_not_a_traceback(release_db):
    with release_db.engine.begin() as conn:
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('gone_0001')"))
    with pytest.raises(migrate.SchemaBehindError, match="no installed plugin provides: "
                                                        "gone_0001"):
        migrate.upgrade(release_db)
    with pytest.raises(migrate.SchemaBehindError, match="gone_0001"):
        migrate.check(release_db)
