"""Send limits: sliding window, limit modes, the three tiers, what counts, atomicity."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import inspect, select

from ie_core import (
    Action,
    Direction,
    Finding,
    MessageContext,
    Outcome,
    SenderIdentity,
    Stage,
    hookimpl,
)
from ie_core.db import migrate
from ie_core.db.models import Account, DomainMap, Event
from ie_core.processor import analyse, record
from ie_plugins.ratelimit import counter
from ie_plugins.ratelimit.limits import save_server_settings
from ie_plugins.ratelimit.models import SenderObject, SendRecord
from ie_plugins.ratelimit.objects import ensure, object_keys
from ie_plugins.whitelist import store as whitelist

RAW = b"From: x\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def app(make_app, db_url):
    app = make_app(db_url=db_url, **{"pipeline.outgoing": ["whitelist", "ratelimit"]})
    with app.db.session() as s:
        s.add(Account(name="alice", created_at=app.clock.now()))
        s.add(DomainMap(domain="example.com", account="alice"))
    return app


def send(app, sender="bob@example.com", rcpts=("r@example.org",), dry_run=False,
         outcome=None, raw=RAW):
    ctx = MessageContext(direction=Direction.OUTGOING, raw=raw, mail_from=sender,
                         rcpt_tos=list(rcpts), received_at=app.clock.now(), dry_run=dry_run)
    verdict = analyse(app, ctx)
    if not dry_run:
        done = outcome or ("delivered" if verdict.action is Action.DELIVER
                           else f"held:{uuid.uuid4()}")
        record(app, ctx, verdict, Outcome.parse(done), time.monotonic())
    return verdict


def delivered(app, n, **kw) -> list[bool]:
    return [send(app, **kw).action is Action.DELIVER for _ in range(n)]


def limit_events(app):
    with app.db.session() as s:
        return [e.payload for e in s.scalars(select(Event).where(
            Event.kind == "limit_exceeded").order_by(Event.id))]


def obj(app, so_type, name):
    with app.db.session() as s:
        return s.scalars(select(SenderObject).where(SenderObject.so_type == so_type,
                                                    SenderObject.name == name)).one()


def test_over_the_limit_is_held_with_reason_ratelimit_and_one_event(app):
    save_server_settings(app, {"sender_email": 3})
    assert delivered(app, 3) == [True, True, True]
    verdict = send(app)
    assert verdict.action is Action.QUARANTINE and verdict.reasons == ["ratelimit"]
    assert "sender_email bob@example.com has used 3 of 3" in verdict.findings[-1].detail
    assert delivered(app, 2) == [False, False]
    [event] = limit_events(app)
    assert event["so_type"] == "sender_email" and event["name"] == "bob@example.com"
    assert event["account"] == "alice" and event["limit"] == 3
    assert obj(app, "sender_email", "bob@example.com").limited_at is not None
    # other senders of the same domain are not affected by this sender's limit
    assert delivered(app, 1, sender="carol@example.com") == [True]


def test_sliding_window_returns_each_send_sixty_minutes_later(app, clock):
    save_server_settings(app, {"account": 3})
    start = clock.now()
    for minutes in (0, 10, 20):
        clock.set(start.replace(minute=start.minute + minutes))
        assert send(app).action is Action.DELIVER
    clock.advance(minutes=39, seconds=59)  # 12:59:59, 59:59 after the first send
    assert send(app).action is Action.QUARANTINE
    clock.advance(seconds=1)  # 13:00:00: exactly 60 minutes after the first send
    assert send(app).action is Action.DELIVER
    assert send(app).action is Action.QUARANTINE
    clock.advance(minutes=10)  # the 12:10 send leaves the window at 13:10, not 14:00
    assert send(app).action is Action.DELIVER
    assert send(app).action is Action.QUARANTINE


def test_limit_mode_2_counts_distinct_recipients(app):
    save_server_settings(app, {"limit_mode": 2, "sender_email": 5})
    assert send(app, rcpts=["a@x.org", "b@x.org", "c@x.org"]).action is Action.DELIVER
    with app.db.session() as s:
        units = s.scalars(select(SendRecord.recipients)).all()
    assert set(units) == {3}
    # 3 used; two more distinct recipients fit (the duplicate counts once), a third does not
    assert send(app, rcpts=["d@x.org", "D@X.org", "<e@x.org>"]).action is Action.DELIVER
    assert send(app, rcpts=["f@x.org"]).action is Action.QUARANTINE
    save_server_settings(app, {"limit_mode": 1})
    assert send(app).action is Action.DELIVER  # mode 1: 2 messages of 5


def test_tiers_override_beats_default_and_whitelist_beats_both(app):
    save_server_settings(app, {"domain": 2})
    assert delivered(app, 3) == [True, True, False]
    domain = obj(app, "domain", "example.com")
    with app.db.session() as s:
        s.get(SenderObject, domain.id).limit_override = 4
    assert delivered(app, 3) == [True, True, False]  # a higher override: 4 in the window
    with app.db.session() as s:
        s.get(SenderObject, domain.id).limit_override = 0
    assert delivered(app, 3) == [True] * 3  # 0: unlimited for this object only
    with app.db.session() as s:
        s.get(SenderObject, domain.id).limit_override = None
    assert delivered(app, 1) == [False]  # removed: the default (2) applies again
    whitelist.add(app, "sender", ["example.com"])
    assert delivered(app, 3) == [True] * 3
    # a whitelisted domain has no limit even where the pipeline has no whitelist stage
    only = app.config.with_overrides(**{"pipeline.outgoing": ["ratelimit"]})
    app.config = only
    assert delivered(app, 2) == [True, True]


AUTHED_BOB = (b"Received: from x (x [10.0.0.1]) (Authenticated sender: bob@example.com)"
              b" by y (Postfix) with ESMTPSA id 4ABCDE1; now\r\nSubject: s\r\n\r\nx\r\n")


def test_whitelisted_login_is_shown_in_stats_but_uses_no_allowance(app):
    save_server_settings(app, {"account": 1})
    whitelist.add(app, "authuser", ["bob@example.com"])
    assert delivered(app, 3, raw=AUTHED_BOB) == [True] * 3
    with app.db.session() as s:
        rows = s.scalars(select(SendRecord)).all()
    assert rows and all(r.outcome == "sent" and not r.counted for r in rows)
    assert delivered(app, 2, sender="carol@example.com") == [True, False]


def test_a_whitelisted_sender_never_lifts_the_accounts_limit(app):
    """Issue 13, hole 5: the sender's objects are lifted, the account's limit is not."""
    save_server_settings(app, {"account": 2, "sender_email": 1})
    whitelist.add(app, "sender", ["bob@example.com"])
    assert delivered(app, 3, raw=AUTHED_BOB) == [True, True, False]


class HeldForSpam:
    @staticmethod
    @hookimpl
    def ie_stages(app):
        def run(ctx):
            if b"SPAM" in ctx.raw:
                return Finding(stage="spam", reason="spam", action=Action.QUARANTINE)
            return None
        return [Stage(name="spam", run=run, priority=400)]


def test_mail_held_for_other_reasons_counts_as_quarantined_not_sent(make_app, db_url):
    app = make_app(db_url=db_url, plugins=[("spam", HeldForSpam)],
                   **{"pipeline.outgoing": ["spam", "ratelimit"]})
    save_server_settings(app, {"account": 2})
    spam = b"Subject: SPAM\r\n\r\nx\r\n"
    assert [send(app, raw=spam).reasons for _ in range(3)] == [["spam"]] * 3
    assert delivered(app, 3) == [True, True, False]
    with app.db.session() as s:
        rows = s.execute(select(SendRecord.outcome, SendRecord.message_id)).all()
    by_outcome: dict[str, set[str]] = {}
    for outcome, mid in rows:
        by_outcome.setdefault(outcome, set()).add(mid)
    assert len(by_outcome["sent"]) == 2 and len(by_outcome["quarantined"]) == 4


def test_mail_that_did_not_leave_is_not_counted(app):
    save_server_settings(app, {"account": 2})
    for outcome in ("tempfailed_downstream", "rejected_downstream", "tempfailed"):
        assert send(app, outcome=outcome).action is Action.DELIVER
    assert delivered(app, 3) == [True, True, False]  # the MTA's retries still fit


def test_check_counts_nothing(app):
    save_server_settings(app, {"account": 1})
    for _ in range(3):
        assert send(app, dry_run=True).action is Action.DELIVER
    with app.db.session() as s:
        assert s.scalars(select(SendRecord)).all() == []
        assert s.scalars(select(SenderObject)).all() == []
    assert send(app).action is Action.DELIVER
    assert send(app, dry_run=True).action is Action.QUARANTINE
    assert delivered(app, 1) == [False]


def test_sender_objects_have_stable_ids_and_parents(app):
    ctx = MessageContext(direction=Direction.OUTGOING, mail_from="Bob@Example.com",
                         rcpt_tos=["r@x.org"], received_at=app.clock.now(),
                         raw=b"X-PHP-Script: example.com/wp/mail.php for 1.2.3.4\r\n\r\nb\r\n")
    analyse(app, ctx)
    keys = object_keys(ctx.identity)
    assert [(k.so_type, k.name) for k in keys] == [
        ("account", "alice"), ("domain", "example.com"),
        ("sender_email", "bob@example.com"), ("script", "example.com/wp/mail.php")]
    first = ensure(app, keys)
    assert ensure(app, keys) == first
    account, domain, sender, script = (first[k] for k in keys)
    assert obj(app, "domain", "example.com").parent_id == account
    assert obj(app, "sender_email", "bob@example.com").parent_id == domain
    assert obj(app, "script", "example.com/wp/mail.php").parent_id == account
    assert all(str(uuid.UUID(i)) == i for i in first.values())


def test_a_domain_moved_to_another_account_follows_it_and_counts_there(app):
    with app.db.session() as s:
        s.add(Account(name="carol", created_at=app.clock.now()))
    assert send(app).action is Action.DELIVER
    alice = obj(app, "account", "alice")
    assert obj(app, "domain", "example.com").parent_id == alice.id
    with app.db.session() as s:  # the admin moves the domain (the ORM write bumps the map)
        s.get(DomainMap, "example.com").account = "carol"
    assert send(app).action is Action.DELIVER
    carol = obj(app, "account", "carol")
    assert obj(app, "domain", "example.com").parent_id == carol.id
    assert (carol.window_messages, alice.window_messages) == (1, 1)


def test_a_sender_object_deleted_by_hand_is_created_again(app):
    assert send(app).action is Action.DELIVER
    with app.db.session() as s:
        s.delete(obj(app, "sender_email", "bob@example.com"))
    assert send(app).action is Action.DELIVER
    assert obj(app, "sender_email", "bob@example.com").window_messages == 1


def test_concurrent_checks_never_admit_more_than_the_limit(app):
    save_server_settings(app, {"sender_email": 10})
    keys = object_keys(SenderIdentity(account="alice", domain="example.com",
                                      sender_email="bob@example.com"))
    results: list[bool] = []
    barrier = threading.Barrier(12)

    def worker() -> None:
        barrier.wait()
        for _ in range(4):
            ids = ensure(app, keys)
            over = counter.admit(app, str(uuid.uuid4()), ids, 1, "alice")
            results.append(not over)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 48 and results.count(True) == 10
    assert len(limit_events(app)) == 1


@pytest.mark.parametrize("branch,table", [("ratelimit", "ratelimit_sends"),
                                          ("whitelist", "whitelist_entries")])
def test_migrations_downgrade_and_upgrade(make_app, db_url, branch, table):
    app = make_app(db_url=db_url)
    migrate.downgrade(app.db, f"{branch}@0001_core")  # this branch only, all its revisions
    assert table not in inspect(app.db.engine).get_table_names()
    assert "message_log" in inspect(app.db.engine).get_table_names()
    migrate.upgrade(app.db)
    assert table in inspect(app.db.engine).get_table_names()
    migrate.check(app.db)


def test_stats_domain_never_counts_more_than_its_account_and_the_mark_follows_the_limit(
        make_app, db_url):
    """A domain first seen under root (no domain map yet) moves to its account when the
    map names it: its earlier messages stay root's, not the new account's domain's; and a
    sender over a limit that was lifted since is not shown rate-limited (issue 16)."""
    from datetime import timedelta

    from ie_plugins.ratelimit.stats import Filters, stats

    app = make_app(db_url=db_url, **{"pipeline.outgoing": ["ratelimit"]})
    save_server_settings(app, {"sender_email": 1})
    app.settings.invalidate()
    send(app)  # example.com is nobody's yet: root
    with app.db.session() as s:
        s.add(Account(name="alice", created_at=app.clock.now()))
        s.add(DomainMap(domain="example.com", account="alice"))
    assert send(app).action is Action.QUARANTINE  # alice now; the sender is over its 1
    tree = {a["name"]: a for a in stats(app, timedelta(hours=1), Filters())["accounts"]}
    [domain] = tree["alice"]["domains"]
    assert (tree["alice"]["messages"], tree["alice"]["quarantined"]) == (0, 1)
    assert (domain["messages"], domain["quarantined"]) == (0, 1)  # not root's first one
    [sender] = domain["sender_emails"]
    assert (sender["messages"], sender["quarantined"], sender["rateLimited"]) == (0, 1, True)
    save_server_settings(app, {"sender_email": 0})  # the limit is lifted
    app.settings.invalidate()
    tree = {a["name"]: a for a in stats(app, timedelta(hours=1), Filters())["accounts"]}
    [sender] = tree["alice"]["domains"][0]["sender_emails"]
    assert (sender["limit"], sender["rateLimited"]) == (0, False)
