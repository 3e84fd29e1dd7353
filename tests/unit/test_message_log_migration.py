"""Revision 0008_message_log_digest upgrades a database made before it (rows kept, the
digest column and the queue-id index added) and downgrades, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from ie_core.db import Database, migrate


def test_digest_revision_upgrades_an_older_database(db_url) -> None:
    db = Database(db_url)
    try:
        migrate.upgrade(db)
        migrate.downgrade(db, "0001_core")
        columns = {c["name"] for c in inspect(db.engine).get_columns("message_log")}
        assert "digest" not in columns
        with db.engine.begin() as conn:  # a row as the previous release wrote it
            conn.execute(text(
                "INSERT INTO message_log (id, queue_id, direction, received_at, mail_from, "
                "rcpt_tos, size, account, action, outcome, reasons, score, duration_ms) "
                "VALUES ('m1', 'Q1', 'outgoing', :t, 'a@example.com', '[]', 1, 'root', "
                "'deliver', 'delivered', '[]', 0, 0)"), {"t": datetime.now(UTC)})
        migrate.upgrade(db)
        migrate.check(db)
        inspector = inspect(db.engine)
        assert "digest" in {c["name"] for c in inspector.get_columns("message_log")}
        assert "ix_message_log_queue_id" in {i["name"] for i in
                                             inspector.get_indexes("message_log")}
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT queue_id, digest FROM message_log")).all() == [
                ("Q1", None)]
    finally:
        db.dispose()
