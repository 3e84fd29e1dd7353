"""Auto-release of mail held for the send limit, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from ie_core import Action, Direction, MessageContext, Outcome
from ie_core.db.models import Account, DomainMap
from ie_core.processor import analyse, hold, record
from ie_plugins.quarantine.models import HeldMessage
from ie_plugins.ratelimit.autorelease import release_due
from ie_plugins.ratelimit.limits import save_server_settings
from ie_plugins.ratelimit.models import WAITING, RateHeld, SendRecord
from ie_plugins.whitelist import store as whitelist

RAW = b"From: bob@example.com\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def app(make_app, db_url, sink):
    app = make_app(db_url=db_url, **{"pipeline.outgoing": ["whitelist", "ratelimit"],
                                     "filter.reinject": f"127.0.0.1:{sink.port}",
                                     "filter.reinject_timeout": 5.0})
    with app.db.session() as s:
        s.add(Account(name="alice", created_at=app.clock.now()))
        s.add(DomainMap(domain="example.com", account="alice"))
    save_server_settings(app, {"account": 1})
    return app


def send(app, fake_hold: bool = False) -> str:
    """One message from bob@example.com: its outcome (``delivered`` or ``held:ID``).
    With ``fake_hold`` a held message is recorded under an id the quarantine never had."""
    ctx = MessageContext(direction=Direction.OUTGOING, raw=RAW, mail_from="bob@example.com",
                         rcpt_tos=["r@example.org"], received_at=app.clock.now())
    verdict = analyse(app, ctx)
    if verdict.action is Action.DELIVER:
        outcome = "delivered"
    else:
        assert verdict.reasons == ["ratelimit"]
        held_id = str(uuid.uuid4()) if fake_hold else hold(app, ctx, verdict)
        outcome = f"held:{held_id}"
    record(app, ctx, verdict, Outcome.parse(outcome), time.monotonic())
    return outcome


def waiting(app) -> list[RateHeld]:
    with app.db.session() as s:
        return list(s.scalars(select(RateHeld)))


def test_held_mail_goes_out_when_the_window_has_room_and_counts(app, clock, sink):
    assert send(app) == "delivered"
    held = send(app).partition(":")[2]
    assert release_due(app) == 0  # the window is still full
    clock.advance(minutes=61)
    assert release_due(app) == 1
    assert sink.wait_for(1)[0].data.startswith(b"X-IE-Released: by=auto-release ")
    assert waiting(app) == []
    with app.db.session() as s:
        assert s.get(HeldMessage, held) is None
        assert s.scalars(select(SendRecord).where(SendRecord.message_id == held)).all()
    assert send(app).startswith("held:")  # the release used this hour's allowance


def test_a_sender_whitelisted_meanwhile_is_released_despite_the_limit(app, sink):
    assert send(app) == "delivered"
    send(app)
    whitelist.add(app, "sender", ["example.com"])
    save_server_settings(app, {"account": 0, "domain": 1})
    assert release_due(app) == 1
    assert len(sink.wait_for(1)) == 1


def test_mail_the_quarantine_no_longer_holds_is_dropped_not_retried(app, clock, sink):
    assert send(app) == "delivered"
    held = send(app, fake_hold=True).partition(":")[2]
    [entry] = waiting(app)
    assert entry.held_id == held and entry.state == WAITING
    clock.advance(minutes=61)
    assert release_due(app) == 0
    assert waiting(app) == []  # gone at once, not retried every 5 minutes
    with app.db.session() as s:
        assert s.scalars(select(SendRecord).where(SendRecord.message_id == held)).all() == []
    assert sink.messages == []
