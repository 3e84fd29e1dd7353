"""Sending the ledger through a real SMTP sink: retries on 4xx, 5xx recorded, and the
resolution of rows a dead notifier left behind."""

from __future__ import annotations

import logging

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select, update

from ie_core import App
from ie_core.events import emit
from ie_plugins.notify.delivery import Delivery
from ie_plugins.notify.models import FAILED, HANDED_OVER, PENDING, SENDING, SENT, Notification
from ie_plugins.notify.service import Notifier
from ie_plugins.quarantine.event_kinds import ACCOUNT_BLOCKED

ADMIN = "postmaster@example.net"


@pytest.fixture
def app(make_app, db_url, sink) -> App:
    return make_app(db_url=db_url, **{"notify.admin_address": ADMIN,
                                      "filter.reinject": f"127.0.0.1:{sink.port}",
                                      "filter.reinject_timeout": 5.0})


def blocked(app: App, *accounts: str) -> None:
    with app.db.session() as s:
        for account in accounts:
            emit(s, app.clock, ACCOUNT_BLOCKED, account, {"account": account, "actor": "root"})


def ledger(app: App) -> list[Notification]:
    with app.db.session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)).all())


def test_sent_once_with_its_message_id(app, sink) -> None:
    blocked(app, "alice")
    report = Notifier(app).run_once()
    [row] = ledger(app)
    assert report.sent == [row.key] and row.state == SENT
    [got] = sink.messages
    assert got.rcpt_tos == [ADMIN]
    assert f"Message-ID: {row.message_id}".encode() in got.data
    assert Notifier(app).run_once().sent == []
    assert len(sink.messages) == 1


def test_4xx_is_retried_with_backoff_then_sent(app, sink, clock) -> None:
    sink.handler.mode = "tempfail"
    blocked(app, "alice")
    n = Notifier(app)
    assert len(n.run_once().deferred) == 1
    [row] = ledger(app)
    assert (row.state, row.attempts) == (PENDING, 1)
    assert (row.next_attempt_at - clock.now()).total_seconds() == pytest.approx(60, abs=1)
    sink.handler.mode = "accept"
    assert n.run_once().sent == []  # not yet due
    clock.advance(seconds=61)
    assert len(n.run_once().sent) == 1
    assert [r.state for r in ledger(app)] == [SENT]
    assert len(sink.messages) == 1


def test_backoff_doubles_and_gives_up_after_max_attempts(make_app, db_url, sink, clock) -> None:
    app = make_app(db_url=db_url, **{"notify.admin_address": ADMIN,
                                     "filter.reinject": f"127.0.0.1:{sink.port}",
                                     "notify.max_attempts": 3})
    sink.handler.mode = "tempfail"
    blocked(app, "alice")
    n = Notifier(app)
    waits = []
    for _ in range(3):
        n.run_once()
        [row] = ledger(app)
        waits.append(round((row.next_attempt_at - clock.now()).total_seconds()))
        clock.advance(hours=2)
    assert waits[:2] == [60, 120]
    assert ledger(app)[0].state == FAILED
    assert ledger(app)[0].attempts == 3


def test_5xx_is_recorded_and_not_retried(app, sink, clock) -> None:
    sink.handler.mode = "reject"
    blocked(app, "alice")
    n = Notifier(app)
    assert len(n.run_once().failed) == 1
    [row] = ledger(app)
    assert row.state == FAILED and row.last_reply.startswith("554 5.7.1")
    sink.handler.mode = "accept"
    clock.advance(days=30)
    n.run_once()
    assert ledger(app)[0].attempts == 1 and sink.messages == []


def test_refused_recipient_5xx_fails_only_that_row(app, sink) -> None:
    sink.handler.refuse.add(ADMIN)
    blocked(app, "alice")
    Notifier(app).run_once()
    assert ledger(app)[0].state == FAILED


def _orphan(app: App, state: str, claimed_by: str) -> None:
    with app.db.session() as s:
        s.execute(update(Notification).values(state=state, claimed_by=claimed_by,
                                              claimed_at=app.clock.now(), attempts=1))


def test_row_left_sending_by_a_dead_process_is_sent_again(app, sink) -> None:
    blocked(app, "alice")
    n = Notifier(app)
    n.catch_up()
    _orphan(app, SENDING, f"{n.delivery.host}:999999:dead")  # no such pid
    assert n.run_once().sent  # recovered, then sent
    assert len(sink.messages) == 1
    assert ledger(app)[0].attempts == 2


def test_row_left_handed_over_is_recorded_sent_not_resent(app, sink, caplog) -> None:
    blocked(app, "alice")
    n = Notifier(app)
    n.catch_up()
    _orphan(app, HANDED_OVER, f"{n.delivery.host}:999999:dead")
    with caplog.at_level(logging.WARNING, logger="ie.notify"):
        n.run_once()
    [row] = ledger(app)
    assert row.state == SENT and row.last_reply.startswith("unconfirmed")
    assert sink.messages == []
    assert any("event=notification_unconfirmed" in r.getMessage() for r in caplog.records)


def test_a_live_claim_is_left_alone(app, sink) -> None:
    import os

    blocked(app, "alice")
    n = Notifier(app)
    n.catch_up()
    other = Delivery(app)
    try:
        _orphan(app, SENDING, f"{other.host}:{os.getppid()}:other")  # alive, not ours
        n.run_once()
        assert ledger(app)[0].state == SENDING and sink.messages == []
    finally:
        other.close()


def test_database_failure_before_the_final_dot_sends_nothing(app, sink, monkeypatch) -> None:
    """If recording ``handed_over`` fails, the connection closes without the dot."""
    blocked(app, "alice")
    n = Notifier(app)
    n.catch_up()

    def broken(row_id: int) -> None:
        raise ConnectionError("database went away")

    monkeypatch.setattr(n.delivery, "_handed_over", broken)
    report = n.delivery.deliver_due()
    assert len(report.deferred) == 1
    assert sink.messages == []
    monkeypatch.undo()
    n.delivery.recover()
    with app.db.session() as s:
        s.execute(update(Notification).values(next_attempt_at=app.clock.now()))
    assert n.delivery.deliver_due().sent
    assert len(sink.messages) == 1


def _drop_connection(sink, hook: str) -> None:
    """Make the sink close the connection in ``handle_<hook>``: after the final dot for
    ``DATA`` (the message is kept, as an MTA that committed it would), before it for
    ``RCPT``."""
    kept = sink.handler.handle_DATA

    async def drop(server: SMTP, session: Session, envelope: Envelope, *args: object) -> str:
        if hook == "DATA":
            await kept(server, session, envelope)
        assert server.transport is not None
        server.transport.close()
        return "421 4.3.0 gone"

    setattr(sink.handler, f"handle_{hook}", drop)


def test_connection_lost_after_the_final_dot_is_sent_unconfirmed_not_resent(
        app, sink, clock, caplog) -> None:
    _drop_connection(sink, "DATA")
    blocked(app, "alice")
    n = Notifier(app)
    with caplog.at_level(logging.WARNING, logger="ie.notify"):
        report = n.run_once()
    [row] = ledger(app)
    assert report.sent == [row.key] and report.deferred == []
    assert row.state == SENT and row.last_reply.startswith("unconfirmed: 451 4.4.2")
    assert any("event=notification_unconfirmed" in r.getMessage() for r in caplog.records)
    clock.advance(days=1)
    n.run_once()
    assert len(sink.messages) == 1


def test_connection_lost_before_the_final_dot_is_sent_again(app, sink, clock) -> None:
    _drop_connection(sink, "RCPT")
    blocked(app, "alice")
    n = Notifier(app)
    assert len(n.run_once().deferred) == 1
    [row] = ledger(app)
    assert row.state == PENDING and row.last_reply.startswith("451 4.4.2")
    del sink.handler.handle_RCPT  # back to the class's hook
    clock.advance(seconds=61)
    assert len(n.run_once().sent) == 1
    assert len(sink.messages) == 1
