"""The message log keeps ``filter.log_keep_days`` of rows (never less than the duplicate
window), deleted in chunks by the daemon's pruning service."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from ie_core import message_log
from ie_core.db.models import MessageLog


def add(app, message_id: str, age: timedelta) -> None:
    with app.db.session() as s:
        s.add(MessageLog(id=message_id, queue_id=None, direction="outgoing",
                         received_at=app.clock.now() - age, mail_from="a@example.com",
                         rcpt_tos=["b@example.org"], size=1, account="root",
                         action="deliver", outcome="delivered", reasons=[]))


def kept(app) -> set[str]:
    with app.db.reading() as s:
        return set(s.scalars(select(MessageLog.id)))


def test_rows_past_the_keep_time_go_in_chunks_the_rest_stay(make_app, db_url):
    app = make_app(db_url=db_url, **{"filter.log_keep_days": 10})
    for i in range(7):
        add(app, f"old{i}", timedelta(days=11, minutes=i))
    add(app, "recent", timedelta(days=9))
    add(app, "today", timedelta(0))
    assert message_log.prune(app, chunk=3) == 7  # three chunks: 3, 3, 1
    assert kept(app) == {"recent", "today"}
    assert message_log.prune(app) == 0


def test_the_duplicate_window_is_kept_whatever_the_setting(make_app, db_url):
    app = make_app(db_url=db_url, **{"filter.log_keep_days": 0,
                                     "filter.duplicate_window": 2 * 86400.0})
    add(app, "yesterday", timedelta(days=1))
    add(app, "three days", timedelta(days=3))
    message_log.prune(app)
    assert kept(app) == {"yesterday"}


def test_the_pruning_runs_once_per_daemon_not_in_every_worker(make_app):
    from ie_core.background import Scope
    from ie_core.daemon import services

    app = make_app()
    in_services_process = [s.name for s in services(app, (Scope.DAEMON,), None)]
    in_a_worker = [s.name for s in services(app, (Scope.WORKER,), None)]
    assert "message-log-prune" in in_services_process
    assert "message-log-prune" not in in_a_worker
