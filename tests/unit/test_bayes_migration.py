"""Migration 0004_bayes upgrades and downgrades on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect

from ie_core.db import Database, migrate

TABLES = {"bayes_tokens", "bayes_messages", "bayes_state"}


def test_bayes_branch_downgrades_and_upgrades(db_url):
    db = Database(db_url)
    try:
        migrate.upgrade(db)
        assert set(inspect(db.engine).get_table_names()) >= TABLES
        migrate.downgrade(db, "bayes@-1")
        names = set(inspect(db.engine).get_table_names())
        assert not TABLES & names and "settings" in names  # only our branch went
        migrate.upgrade(db)
        assert set(inspect(db.engine).get_table_names()) >= TABLES
        assert "0004_bayes" in migrate.current_heads(db)
    finally:
        db.dispose()
