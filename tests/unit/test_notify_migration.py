"""Revision 0006_notify upgrades and downgrades on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect

from ie_core.db import Database, migrate

TABLES = {"notify_notifications", "notify_held", "notify_digests"}


def test_notify_branch_downgrades_and_upgrades(db_url) -> None:
    db = Database(db_url)
    try:
        migrate.upgrade(db)
        assert set(inspect(db.engine).get_table_names()) >= TABLES
        migrate.downgrade(db, "notify@base")
        assert not TABLES & set(inspect(db.engine).get_table_names())
        assert "0006_notify" not in migrate.current_heads(db)
        migrate.upgrade(db)
        assert set(inspect(db.engine).get_table_names()) >= TABLES
        migrate.check(db)
    finally:
        db.dispose()
