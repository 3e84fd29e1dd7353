"""Who is told what: events and digests become exactly the right ledger rows."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from ie_core import App
from ie_core.db.models import Account
from ie_core.events import Event, emit
from ie_plugins.notify import options
from ie_plugins.notify.models import Notification
from ie_plugins.notify.plan import DigestRequest, handle_event, plan_digests
from ie_plugins.notify.rendering import Templates
from ie_plugins.notify.service import Notifier
from ie_plugins.quarantine.event_kinds import ACCOUNT_BLOCKED, DELETED, HELD, RELEASED
from ie_plugins.ratelimit.counter import LIMIT_EXCEEDED

ADMIN = "postmaster@example.net"


@pytest.fixture
def app(make_app, db_url) -> App:
    a = make_app(db_url=db_url, **{"notify.admin_address": ADMIN})
    with a.db.session() as s:
        for name in ("alice", "bob", "carol"):
            s.add(Account(name=name, owner_email=f"{name}@owner.example",
                          created_at=a.clock.now()))
    return a


def hold(app: App, held_id: str, account: str, subject: str = "hello") -> None:
    with app.db.session() as s:
        emit(s, app.clock, HELD, account, {
            "id": held_id, "account": account, "sender": f"{account}@site.example",
            "recipients": ["x@example.org"], "subject": subject, "reasons": ["spam"],
            "size": 100})


def event(app: App, kind: str, account: str, payload: dict) -> None:
    with app.db.session() as s:
        emit(s, app.clock, kind, account, payload)


def rows(app: App, kind: str | None = None) -> list[Notification]:
    with app.db.session() as s:
        q = select(Notification).order_by(Notification.id)
        if kind:
            q = q.where(Notification.kind == kind)
        return list(s.scalars(q).all())


def text_of(row: Notification) -> str:
    msg = email.message_from_bytes(row.message, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("plain",))
    assert body is not None
    return body.get_content()


def ids_listed(row: Notification) -> set[str]:
    return {line.split("--ids ")[1] for line in text_of(row).splitlines()
            if "emails release --ids" in line}


def digest(app: App, **req) -> list:
    """The owner digests planned now (the admin's summary is looked at separately)."""
    return [d for d in digest_all(app, **req) if d.scope != "admin"]


def digest_all(app: App, **req) -> list:
    n = Notifier(app)
    n.catch_up()
    return plan_digests(app, n.templates, DigestRequest(**req))


def test_one_digest_per_account_listing_exactly_its_messages(app) -> None:
    for i in range(3):
        hold(app, f"a{i}", "alice")
    hold(app, "b0", "bob")
    planned = digest(app)
    assert sorted((d.scope, d.count) for d in planned) == [("owner:alice", 3), ("owner:bob", 1)]
    by_to = {r.recipient: r for r in rows(app, "owner_digest")}
    assert set(by_to) == {"alice@owner.example", "bob@owner.example"}
    assert ids_listed(by_to["alice@owner.example"]) == {"a0", "a1", "a2"}
    assert ids_listed(by_to["bob@owner.example"]) == {"b0"}
    # again: nothing new, nothing planned (even when forced)
    assert digest(app) == []
    assert digest(app, force=True) == []
    assert len(rows(app, "owner_digest")) == 2
    # all time: every message still held
    planned = digest(app, all_time=True)
    assert sorted((d.scope, d.count) for d in planned) == [("owner:alice", 3), ("owner:bob", 1)]
    assert len(rows(app, "owner_digest")) == 4


def test_only_messages_new_since_the_last_digest_and_not_released_ones(app, clock) -> None:
    hold(app, "a0", "alice")
    digest(app)
    hold(app, "a1", "alice")
    hold(app, "a2", "alice")
    event(app, RELEASED, "alice", {"id": "a2", "account": "alice", "actor": "root"})
    assert digest(app) == []  # daily: not due yet
    clock.advance(hours=24)
    [d] = digest(app)
    assert d.count == 1
    assert ids_listed(rows(app, "owner_digest")[-1]) == {"a1"}


@pytest.mark.parametrize("period, wait_hours, due", [
    ("hourly", 1, True), ("hourly", 0.5, False), ("weekly", 24 * 6, False),
    ("weekly", 24 * 7, True), ("never", 24 * 365, False)])
def test_digest_period_per_account(app, clock, period, wait_hours, due) -> None:
    app.settings.set(options.owner_schedule_key("alice"), period)
    app.settings.invalidate()
    hold(app, "a0", "alice")
    first = digest(app)
    assert bool(first) == (period != "never")
    hold(app, "a1", "alice")
    clock.advance(hours=wait_hours)
    assert bool(digest(app)) == due
    if period == "never":  # an explicit --account still sends it
        assert [d.count for d in digest(app, account="alice")] == [2]


def test_no_owner_address_no_digest(app) -> None:
    with app.db.session() as s:
        s.get(Account, "carol").owner_email = None
    hold(app, "c0", "carol")
    assert digest(app) == []


def test_owner_told_when_admin_releases_or_deletes_not_when_they_do(app) -> None:
    hold(app, "a0", "alice", subject="Invoice 42")
    hold(app, "a1", "alice")
    hold(app, "a2", "alice")
    event(app, RELEASED, "alice", {"id": "a0", "account": "alice", "actor": "root"})
    event(app, DELETED, "alice", {"id": "a1", "account": "alice", "actor": "root"})
    event(app, RELEASED, "alice", {"id": "a2", "account": "alice", "actor": "alice"})
    Notifier(app).catch_up()
    got = rows(app, "owner_action")
    assert [r.recipient for r in got] == ["alice@owner.example"] * 2
    assert "released" in text_of(got[0]) and "Invoice 42" in text_of(got[0])
    assert "deleted" in text_of(got[1])


def test_admin_notices_each_summary_or_off(app, clock) -> None:
    app.settings.set(options.ADMIN_HELD.name, "each")
    hold(app, "a0", "alice")
    hold(app, "b0", "bob")
    Notifier(app).catch_up()
    assert [r.recipient for r in rows(app, "admin_held")] == [ADMIN, ADMIN]
    assert not [d for d in digest_all(app) if d.scope == "admin"]
    app.settings.set(options.ADMIN_HELD.name, "summary")
    hold(app, "a1", "alice")
    hold(app, "b1", "bob")
    [summary] = [d for d in digest_all(app) if d.scope == "admin"]
    assert summary.count == 2 and summary.recipient == ADMIN
    assert ids_listed(rows(app, "admin_summary")[0]) == {"a1", "b1"}
    app.settings.set(options.ADMIN_HELD.name, "off")
    hold(app, "a2", "alice")
    clock.advance(days=2)
    assert not [d for d in digest_all(app) if d.scope == "admin"]
    assert len(rows(app, "admin_held")) == 2


def test_limit_and_block_notices_are_switchable(app) -> None:
    event(app, LIMIT_EXCEEDED, "alice", {"object_id": "o1", "so_type": "domain",
                                          "name": "site.example", "account": "alice",
                                          "limit": 100, "used": 101})
    event(app, ACCOUNT_BLOCKED, "alice", {"account": "alice", "actor": "root"})
    Notifier(app).catch_up()
    [limit] = rows(app, "limit_exceeded")
    assert "domain site.example (account alice) went over its limit of 100" in text_of(limit)
    assert [r.recipient for r in rows(app, "account_blocked")] == [ADMIN]
    app.settings.set(options.ADMIN_LIMIT.name, False)
    app.settings.set(options.ADMIN_BLOCKED.name, False)
    event(app, LIMIT_EXCEEDED, "bob", {"so_type": "account", "name": "bob", "limit": 5})
    event(app, ACCOUNT_BLOCKED, "bob", {"account": "bob", "actor": "root"})
    Notifier(app).catch_up()
    assert len(rows(app)) == 2


def test_handling_an_event_twice_plans_once(app) -> None:
    hold(app, "a0", "alice")
    app.settings.set(options.ADMIN_HELD.name, "each")
    with app.db.session() as s:
        from ie_core.db.models import Event as EventRow

        r = s.scalars(select(EventRow)).one()
        ev = Event(r.id, r.created_at, r.kind, r.account, dict(r.payload))
    templates = Templates("")
    handle_event(app, templates, ev)
    handle_event(app, templates, ev)
    assert len(rows(app, "admin_held")) == 1
