"""The quarantine store, limits, release and service rules, on SQLite and PostgreSQL."""

from __future__ import annotations

import collections
import contextlib
import os
import random
import threading
import time
import uuid

import pytest
from sqlalchemy import event, func, select, text, update

from ie_core import (
    Action,
    Direction,
    Finding,
    InvalidInput,
    MessageContext,
    NotFound,
    PermissionDenied,
    Verdict,
)
from ie_core.db import migrate
from ie_core.db.models import Event
from ie_plugins.quarantine import actions, ie_hold, ie_release, sweep
from ie_plugins.quarantine.actions import ReleaseRefused
from ie_plugins.quarantine.models import HeldMessage, QuarantineAccount, QuarantineLog
from ie_plugins.quarantine.service import Caller, QuarantineService
from tests.fixtures.groupcommit import queued_behind_a_slow_one

ROOT = Caller.root()
ALICE = Caller("alice", False)
BOB = Caller("bob", False)


def message(subject: str = "hello", size: int = 0, marker: str = "") -> bytes:
    head = (f"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n"
            f"Subject: {subject}\r\nX-PHP-Script: example.com/wp/x.php for 1.2.3.4\r\n\r\n")
    body = f"Hello.{marker}\r\n"
    raw = (head + body).encode()
    if size:
        raw += b"x" * (size - len(raw) - 2) + b"\r\n"
    return raw


def hold(app, account: str = "alice", raw: bytes | None = None, rcpts=None,
         reasons=("spam",), score: float = 7.5) -> str:
    ctx = MessageContext(direction=Direction.OUTGOING, raw=raw or message(),
                         mail_from="alice@example.com",
                         rcpt_tos=rcpts or ["bob@example.org", "hidden@example.net"],
                         received_at=app.clock.now())
    ctx.identity.account = account
    ctx.identity.script = "example.com/wp/x.php for 1.2.3.4"
    ctx.identity.script_domain, ctx.identity.script_path = "example.com", "/wp/x.php"
    findings = [Finding(stage=r, reason=r, score=score, action=Action.QUARANTINE)
                for r in reasons]
    held = ie_hold(app, ctx, Verdict(Action.QUARANTINE, findings, score))
    assert held is not None
    return held


def events(app, kind: str) -> list[dict]:
    with app.db.session() as s:
        return [e.payload for e in s.scalars(select(Event).where(Event.kind == kind)
                                             .order_by(Event.id))]


@pytest.fixture
def qapp(make_app, db_url, sink):
    return make_app(db_url=db_url, **{"filter.reinject": f"127.0.0.1:{sink.port}",
                                      "filter.reinject_timeout": 5.0})


@pytest.fixture
def service(qapp):
    svc = QuarantineService(qapp)
    yield svc
    svc.close()


def test_hold_keeps_exact_bytes_and_metadata(qapp, service):
    raw = message(subject="=?utf-8?q?h=C3=A9llo?=") + b"\xff\xfe raw 8-bit\r\n"
    held = hold(qapp, raw=raw)
    assert (qapp.data_dir / "quarantine" / held).read_bytes() == raw
    [item] = service.emails_list(ROOT)["items"]
    assert item["email_id"] == held and item["account_name"] == "alice"
    assert item["recipients"] == ["bob@example.org", "hidden@example.net"]
    assert item["subject"] == "héllo" and item["size_bytes"] == len(raw)
    assert item["reasons"] == ["spam"] and item["score"] == 7.5
    assert item["script_header"] == {"raw": "example.com/wp/x.php for 1.2.3.4",
                                     "domain": "example.com", "path": "/wp/x.php"}
    shown = service.emails_show(ALICE, held)
    assert shown["from"] == "Alice <alice@example.com>"
    assert shown["body"].startswith("Hello.")
    with service.emails_raw(ALICE, held) as stream:
        assert stream.read() == raw
    [payload] = events(qapp, "held")
    assert payload == {"id": held, "account": "alice", "sender": "alice@example.com",
                       "recipients": ["bob@example.org", "hidden@example.net"],
                       "subject": "héllo", "reasons": ["spam"], "size": len(raw),
                       "direction": "outgoing", "score": 7.5}


def test_eviction_deletes_exactly_the_oldest(qapp, service, clock):
    service.accounts_edit(ROOT, "alice", limit=str(50 * 1024))
    ids = []
    for _ in range(4):  # 4 x 15 KB = 60 KB > 50 KB
        ids.append(hold(qapp, raw=message(size=15 * 1024)))
        clock.advance(seconds=10)
    listed = [i["email_id"] for i in service.emails_list(ROOT)["items"]]
    assert listed == ids[1:][::-1]  # newest first, the oldest is gone
    assert not (qapp.data_dir / "quarantine" / ids[0]).exists()
    ids.append(hold(qapp, raw=message(size=30 * 1024)))  # 45 + 30 > 50: two more go
    assert {i["email_id"] for i in service.emails_list(ROOT)["items"]} == {ids[3], ids[4]}
    [acct] = service.accounts_list(ROOT)["items"]
    assert acct["deleted_last_hour"] == 3 and acct["used_bytes"] == 45 * 1024
    assert [e["id"] for e in events(qapp, "evicted")] == ids[:3]
    clock.advance(hours=1, seconds=1)
    assert service.accounts_list(ROOT)["items"][0]["deleted_last_hour"] == 0


def test_concurrent_holds_share_a_transaction_and_keep_the_limit(qapp, service):
    """Holds finishing together are written in one transaction (the group commit), each
    seeing the ones before it: the account stays within its limit, every message is
    either listed or evicted with its event, and the files on disk are the listed ones."""
    service.accounts_edit(ROOT, "alice", limit=str(50 * 1024))
    hold(qapp, raw=message(size=10 * 1024, marker="first"))  # the account exists
    commits = []
    event.listen(qapp.db.engine, "commit", lambda conn: commits.append(1))
    held: list[str] = []
    store = qapp.data_dir / "quarantine"
    queued_behind_a_slow_one(
        lambda gate: qapp.db.group.run(lambda s: gate.wait(5)),
        [lambda i=i: held.append(hold(qapp, raw=message(size=10 * 1024, marker=str(i))))
         for i in range(12)],
        ready=lambda: sum(1 for p in store.iterdir() if not p.name.startswith(".")) == 13)
    assert len(held) == 12
    assert len(commits) <= 3  # the blocker's, then the twelve holds together
    listed = {i["email_id"] for i in service.emails_list(ROOT, limit="100")["items"]}
    evicted = {e["id"] for e in events(qapp, "evicted")}
    assert len(listed) == 5 and not listed & evicted
    assert listed | evicted >= set(held)
    assert service.accounts_list(ROOT)["items"][0]["used_bytes"] == 50 * 1024
    assert {p.name for p in store.iterdir() if not p.name.startswith(".")} == listed


def test_used_bytes_follow_every_way_in_and_out(qapp, service, clock):
    """Each account row's used bytes (kept by the database's triggers) equal the sum of
    its held and releasing messages after holds, evictions, releases, deletions, claims,
    undone claims, rows moved by hand and a purge, in a random order."""
    rng = random.Random(14)
    service.accounts_edit(ROOT, "alice", limit=str(60 * 1024))

    def check() -> None:
        with qapp.db.session() as s:
            kept = dict(s.execute(select(QuarantineAccount.name,
                                         QuarantineAccount.used_bytes)).all())
            summed = dict(s.execute(
                select(HeldMessage.account, func.sum(HeldMessage.size))
                .where(HeldMessage.state.in_(("held", "releasing")))
                .group_by(HeldMessage.account)).all())
        assert {name: used for name, used in kept.items() if used} == summed

    def claim(ids: list[str], state: str) -> None:
        with qapp.db.session() as s:
            s.execute(update(HeldMessage).where(HeldMessage.id.in_(ids))
                      .values(state=state))

    kinds = collections.Counter()
    for _ in range(80):
        listed = [i["email_id"] for i in service.emails_list(ROOT, limit="100")["items"]]
        kind = rng.choice(["hold", "hold", "hold", "release", "delete", "claim", "unclaim",
                           "move", "purge"]) if listed else "hold"
        if kind == "hold":
            hold(qapp, account=rng.choice(["alice", "bob"]),
                 raw=message(size=rng.randrange(2, 20) * 1024, marker=str(rng.random())))
        elif kind == "release":
            with contextlib.suppress(ReleaseRefused):
                service.emails_release(ROOT, rng.choice(listed))
        elif kind == "delete":
            service.emails_remove(ROOT, ",".join(rng.sample(listed, min(3, len(listed)))))
        elif kind == "move":  # an admin's own SQL: another account, another size
            with qapp.db.session() as s:
                s.execute(update(HeldMessage).where(HeldMessage.id == rng.choice(listed))
                          .values(account="alice", size=HeldMessage.size + 1))
        elif kind in ("claim", "unclaim"):
            claim(rng.sample(listed, min(2, len(listed))),
                  "releasing" if kind == "claim" else "held")
        else:
            claim(listed, "held")
            with contextlib.suppress(NotFound):  # bob held nothing since the last purge
                service.accounts_remove(ROOT, "bob")
        kinds[kind] += 1
        clock.advance(seconds=5)
        check()
    assert events(qapp, "evicted") and min(kinds.values()) >= 3


def test_a_large_message_evicts_many_small_ones_oldest_first(qapp, service, clock):
    """The oldest are looked for a page at a time: 40 small messages, some held in the
    same second (then the id decides), make room for one nearly as large as the limit."""
    service.accounts_edit(ROOT, "alice", limit=str(48 * 1024))
    small = []
    for i in range(40):
        small.append(hold(qapp, raw=message(size=1024, marker=str(i))))
        if i % 3 == 0:
            clock.advance(seconds=1)
    with qapp.db.session() as s:
        order = [r.id for r in s.scalars(select(HeldMessage).order_by(
            HeldMessage.quarantined_at, HeldMessage.id))]
    big = hold(qapp, raw=message(size=40 * 1024))
    listed = {i["email_id"] for i in service.emails_list(ROOT, limit="100")["items"]}
    assert listed == {big, *order[32:]}  # 8 + 40 KB fit in 48 KB
    assert [e["id"] for e in events(qapp, "evicted")] == order[:32]


def test_a_single_message_larger_than_the_limit_is_still_held(qapp, service, clock):
    service.accounts_edit(ROOT, "alice", limit="10000")
    first = hold(qapp, raw=message(size=5000))
    clock.advance(seconds=1)
    big = hold(qapp, raw=message(size=20000))
    assert [i["email_id"] for i in service.emails_list(ROOT)["items"]] == [big]
    assert [e["id"] for e in events(qapp, "evicted")] == [first]
    assert service.accounts_list(ROOT)["items"][0]["used_bytes"] == 20000


def test_accounts_are_separate_subspaces(qapp, service):
    a = hold(qapp, account="alice")
    b = hold(qapp, account="bob")
    assert {i["email_id"] for i in service.emails_list(ROOT)["items"]} == {a, b}
    assert {i["email_id"] for i in service.emails_list(ROOT, account="root")["items"]} == {a, b}
    assert [i["email_id"] for i in service.emails_list(ROOT, account="bob")["items"]] == [b]
    assert [i["email_id"] for i in service.emails_list(ALICE)["items"]] == [a]
    with pytest.raises(PermissionDenied):
        service.emails_list(ALICE, account="bob")
    # the other account's id and an unknown id get the very same answer
    answers = []
    for guess in (b, str(uuid.uuid4())):
        for op in (lambda i: service.emails_show(ALICE, i),
                   lambda i: service.emails_release(ALICE, i)["failed"][i],
                   lambda i: service.emails_remove(ALICE, i)["failed"][i]):
            try:
                answers.append(op(guess).replace(guess, "ID"))
            except NotFound as err:
                answers.append(str(err).replace(guess, "ID"))
    assert len(set(answers)) == 1, answers
    assert service.emails_list(BOB)["max_count"] == 1  # nothing of bob's was touched
    assert [i["name"] for i in service.accounts_list(ALICE)["items"]] == ["alice"]
    with pytest.raises(PermissionDenied):
        service.accounts_edit(ALICE, "alice", state="active")


def test_list_filters_and_paging(qapp, service, clock):
    ids = []
    for n in range(5):
        ids.append(hold(qapp, reasons=("spam",) if n % 2 else ("winexec", "spam")))
        clock.advance(minutes=10)
    assert service.emails_list(ROOT, since="15m")["max_count"] == 1  # received 10 min ago
    assert service.emails_list(ROOT, since="3600s")["max_count"] == 5
    assert service.emails_list(ROOT, since=" 1 H ")["max_count"] == 5  # as am stats takes
    # a bare number is seconds, as Imunify Email documents (issue 16: it was hours)
    assert service.emails_list(ROOT, since="1")["max_count"] == 0
    assert service.emails_list(ROOT, since="600")["max_count"] == 1
    assert service.emails_list(ROOT, since="1w")["max_count"] == 5
    assert service.emails_list(ROOT, reason="winexec")["max_count"] == 3
    assert service.emails_list(ROOT, reason="wine")["max_count"] == 0
    assert service.emails_list(ROOT, sender="ALICE@")["max_count"] == 5
    # a window with a text filter (on SQLite its total is counted from another index)
    assert service.emails_list(ROOT, since="25m", reason="winexec")["max_count"] == 1
    assert service.emails_list(ROOT, since="25m", sender="alice@")["max_count"] == 2
    today = clock.now().date().isoformat()
    assert service.emails_list(ROOT, date_from=today, date_to=today,
                               reason="spam")["max_count"] == 5
    page = service.emails_list(ROOT, limit="2", offset="1")
    assert [i["email_id"] for i in page["items"]] == [ids[3], ids[2]]
    assert page["max_count"] == 5


def test_pages_walk_the_list_in_its_order_and_sender_is_literal_in_any_case(qapp, service,
                                                                            clock):
    """Messages of the same second come in id order, newest first, page after page (the
    order the index has); the sender filter ignores case and takes % and _ literally."""
    senders = ["Alice@Example.com", "a%b@example.com", "a_b@example.com", "axb@example.com",
               "ALICE@example.org", "carol@example.net", "x/y@example.com"]
    ids = []
    for n, sender in enumerate(senders * 2):
        ids.append(hold(qapp))
        with qapp.db.session() as s:
            s.execute(update(HeldMessage).where(HeldMessage.id == ids[-1])
                      .values(mail_from=sender))
        if n % 3 == 2:
            clock.advance(seconds=1)
    by_arrival = sorted(ids, key=lambda i: (ids.index(i) // 3, i), reverse=True)
    pages = [service.emails_list(ROOT, limit="4", offset=str(k))["items"]
             for k in range(0, len(ids), 4)]
    assert [i["email_id"] for page in pages for i in page] == by_arrival

    def senders_of(text: str) -> set[str]:
        listed = service.emails_list(ROOT, sender=text, limit="100")
        assert listed["max_count"] == len(listed["items"])
        return {i["sender"] for i in listed["items"]}

    assert senders_of("alice@") == {"Alice@Example.com", "ALICE@example.org"}
    assert senders_of("EXAMPLE.COM") == {s for s in senders if "example.com" in s.lower()}
    assert senders_of("a%b") == {"a%b@example.com"}
    assert senders_of("a_b") == {"a_b@example.com"}
    assert senders_of("x/y") == {"x/y@example.com"}
    assert senders_of("%") == {"a%b@example.com"}


@pytest.mark.parametrize("few", [2, 1000])
def test_a_sender_filter_lists_alike_with_few_or_many_matches(qapp, service, clock,
                                                              monkeypatch, few):
    """Few matches are listed from one scan, more by a count and an ordered search: the
    same pages and totals either way."""
    monkeypatch.setattr("ie_plugins.quarantine.service.FEW_MATCHES", few)
    ids = []
    for n in range(9):
        ids.append(hold(qapp))
        if n % 2:
            clock.advance(seconds=1)
    with qapp.db.session() as s:
        s.execute(update(HeldMessage).where(HeldMessage.id.in_(ids[::2]))
                  .values(mail_from="Rare@example.com"))
    rare = sorted(ids[::2], key=lambda i: (ids.index(i) // 2, i), reverse=True)
    pages = [service.emails_list(ROOT, sender="rare@", limit="2", offset=str(k))
             for k in range(0, 6, 2)]
    assert [p["max_count"] for p in pages] == [5, 5, 5]
    assert [i["email_id"] for p in pages for i in p["items"]] == rare
    assert service.emails_list(ROOT, sender="rare@", since="1s")["max_count"] == 2  # 6, 8
    assert service.emails_list(ROOT, sender="nobody@")["items"] == []


@pytest.mark.parametrize(("call", "message_part"), [
    (lambda s: s.emails_list(ROOT, since="5x"), "--since takes"),
    (lambda s: s.emails_list(ROOT, limit="-1"), "--limit must be"),
    (lambda s: s.emails_list(ROOT, account="../etc"), "invalid account name"),
    (lambda s: s.emails_list(ROOT, account="a/b"), "invalid account name"),
    (lambda s: s.emails_show(ROOT, "not-a-uuid"), "malformed message id"),
    (lambda s: s.emails_release(ROOT, "x,y"), "malformed message id"),
    (lambda s: s.accounts_edit(ROOT, "alice", limit="-5"), "--limit must be"),
    (lambda s: s.accounts_edit(ROOT, "alice", state="frozen"), "--state takes"),
    (lambda s: s.defaults_set(ROOT, releases_limit="-2"), "--releases-limit must be"),
    (lambda s: s.accounts_edit(ROOT, "alice", releases_limit="3000000000"),
     "--releases-limit must be between 0 and 2147483647, not 3000000000"),
    (lambda s: s.emails_list(ROOT, since="99999999d"), "--since 99999999d is longer than ten"),
    (lambda s: s.emails_history(ROOT, since="9" * 18 + "w"), "is longer than ten years"),
    (lambda s: s.emails_list(ROOT, since=5), "--since takes"),
])
def test_bad_input_is_one_clear_error(service, call, message_part):
    with pytest.raises(InvalidInput, match=message_part):
        call(service)


def test_defaults_set_and_restore(service):
    # Imunify's keys (issue 16): the storage limit in bytes
    assert service.defaults_list(ROOT) == {"limit_bytes": 104857600, "releases_limit": 5}
    service.defaults_set(ROOT, releases_limit="7", storage_capacity="1")
    assert service.defaults_list(ALICE) == {"limit_bytes": 1048576, "releases_limit": 7}
    service.defaults_set(ROOT, releases_limit="-1", storage_capacity="-1")
    assert service.defaults_list(ROOT) == {"limit_bytes": 104857600, "releases_limit": 5}
    with pytest.raises(PermissionDenied):
        service.defaults_set(ALICE, releases_limit="50")


def test_release_sends_exact_bytes_with_one_header_and_logs(qapp, service, sink):
    raw = message()
    held = hold(qapp, raw=raw)
    assert service.emails_release(ALICE, held) == {"done": [held], "failed": {}}
    [got] = sink.wait_for(1)
    assert got.rcpt_tos == ["bob@example.org", "hidden@example.net"]
    first, rest = got.data.split(b"\r\n", 1)
    assert first.startswith(b"X-IE-Released: by=alice at=2026-01-01T12:00:00+00:00 id=" +
                            held.encode())
    assert rest == raw
    assert service.emails_list(ROOT)["max_count"] == 0
    assert not (qapp.data_dir / "quarantine" / held).exists()
    with qapp.db.session() as s:
        [entry] = s.scalars(select(QuarantineLog)).all()
        assert (entry.message_id, entry.action, entry.actor) == (held, "released", "alice")
    assert events(qapp, "released") == [{"id": held, "account": "alice", "actor": "alice"}]


@pytest.mark.parametrize("mode", ["tempfail", "reject"])
def test_refused_release_stays_held(qapp, service, sink, mode):
    held = hold(qapp)
    sink.handler.mode = mode
    result = service.emails_release(ROOT, held)
    assert result["done"] == []
    assert ("451" if mode == "tempfail" else "554") in result["failed"][held]
    assert service.emails_list(ROOT)["items"][0]["email_id"] == held
    sink.handler.mode = "accept"
    assert service.emails_release(ROOT, held)["done"] == [held]


def test_one_refused_recipient_sends_to_nobody(qapp, service, sink):
    held = hold(qapp)
    sink.handler.refuse = {"hidden@example.net"}
    assert "550" in service.emails_release(ROOT, held)["failed"][held]
    assert sink.messages == []
    assert service.emails_list(ROOT)["max_count"] == 1


def test_concurrent_releases_send_once(qapp, sink):
    held = hold(qapp)
    services = [QuarantineService(qapp) for _ in range(4)]
    results: list[dict] = []
    barrier = threading.Barrier(len(services))

    def go(svc: QuarantineService) -> None:
        barrier.wait()
        results.append(svc.emails_release(ROOT, held))

    threads = [threading.Thread(target=go, args=(svc,)) for svc in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for svc in services:
        svc.close()
    assert sum(len(r["done"]) for r in results) == 1
    assert len(sink.wait_for(2, timeout=1)) == 1


def test_release_limit_for_owners_not_root(qapp, service, clock):
    ids = [hold(qapp) for _ in range(8)]
    for held in ids[:5]:
        assert service.emails_release(ALICE, held)["done"] == [held]
    refused = service.emails_release(ALICE, ids[5])["failed"][ids[5]]
    assert "release limit reached: 5 per hour" in refused
    assert service.emails_release(ROOT, ids[5])["done"] == [ids[5]]  # root is not limited
    service.accounts_edit(ROOT, "alice", releases_limit="6")  # applies at once
    assert service.emails_release(ALICE, ids[6])["done"] == [ids[6]]
    assert service.emails_release(ALICE, ids[7])["failed"]
    clock.advance(hours=1, seconds=1)
    assert service.emails_release(ALICE, ids[7])["done"] == [ids[7]]


def test_release_hook_for_auto_release(qapp, sink):
    held = hold(qapp, reasons=("ratelimit",))
    assert ie_release(qapp, held, "ratelimit") is True
    assert sink.wait_for(1)[0].data.startswith(b"X-IE-Released: by=ratelimit ")
    with pytest.raises(NotFound, match=f"no held message with id {held}"):
        ie_release(qapp, held, "ratelimit")  # gone: auto-release stops retrying it


def test_release_of_a_message_being_released_is_refused_not_unknown(qapp, sink):
    held = hold(qapp, reasons=("ratelimit",))
    with qapp.db.session() as s:
        s.get(HeldMessage, held).state = "releasing"
        s.get(HeldMessage, held).claimed_at = qapp.clock.now()
    assert ie_release(qapp, held, "ratelimit") is False
    assert sink.messages == []


def test_service_release_of_a_message_gone_meanwhile_is_one_line(qapp, service, monkeypatch):
    held = hold(qapp)
    found = QuarantineService._find

    def find_then_delete(self, s, held_id, scope):  # an admin deletes it right after
        row = found(self, s, held_id, scope)
        s.delete(row)
        return row

    monkeypatch.setattr(QuarantineService, "_find", find_then_delete)
    assert service.emails_release(ROOT, held) == {
        "done": [], "failed": {held: f"no held message with id {held}"}}


def test_release_and_delete_train_the_classifier(make_app, db_url, sink):
    learned: list[tuple[bytes, bool]] = []

    class Learner:
        from ie_core import hookimpl

        @hookimpl
        def ie_learn(self, app, raw, spam):
            learned.append((raw, spam))

    app = make_app(db_url=db_url, plugins=[("learner", Learner())],
                   **{"filter.reinject": f"127.0.0.1:{sink.port}"})
    svc = QuarantineService(app)
    a, b = hold(app, raw=message(marker="A")), hold(app, raw=message(marker="B"))
    c = hold(app, raw=message(marker="C"), reasons=("ratelimit",))
    svc.emails_release(ROOT, a)
    svc.emails_remove(ROOT, b, spam=True)
    svc.emails_release(ROOT, c)  # held for the send limit: nothing to learn from it
    svc.close()
    assert learned == [(message(marker="A"), False), (message(marker="B"), True)]


def test_remove_and_purge(qapp, service):
    a, b, c = hold(qapp), hold(qapp), hold(qapp, account="bob")
    assert service.emails_remove(ALICE, a) == {"done": [a], "failed": {}}
    assert not (qapp.data_dir / "quarantine" / a).exists()
    assert events(qapp, "deleted") == [{"id": a, "account": "alice", "actor": "alice"}]
    assert service.accounts_remove(ROOT, "alice") == {"deleted": 1}
    assert not (qapp.data_dir / "quarantine" / b).exists()
    assert [i["email_id"] for i in service.emails_list(ROOT)["items"]] == [c]
    assert [i["name"] for i in service.accounts_list(ROOT)["items"]] == ["bob"]
    with pytest.raises(NotFound):
        service.accounts_remove(ROOT, "alice")


def test_a_purge_keeps_the_account_when_mail_is_held_meanwhile(qapp, service, monkeypatch):
    """The account row carries its used bytes: a message held between the purge's
    deletions and the removal of the row keeps the row, and says so."""
    hold(qapp)
    delete = actions.delete

    def delete_then_a_hold_comes(*args, **kwargs):
        done = delete(*args, **kwargs)
        hold(qapp, raw=message(marker="meanwhile"))
        return done

    monkeypatch.setattr(actions, "delete", delete_then_a_hold_comes)
    with pytest.raises(InvalidInput, match="held for alice meanwhile"):
        service.accounts_remove(ROOT, "alice")
    [acct] = service.accounts_list(ROOT)["items"]
    assert acct["used_bytes"] == len(message(marker="meanwhile"))
    monkeypatch.setattr(actions, "delete", delete)
    assert service.accounts_remove(ROOT, "alice") == {"deleted": 1}
    assert service.accounts_list(ROOT)["items"] == []


def test_blocking_an_account_holds_its_mail_and_emits_an_event(qapp, service):
    [stage] = [s for s in qapp.stages(Direction.OUTGOING) if s.name == "blocked"]
    ctx = MessageContext(direction=Direction.OUTGOING, raw=message(), mail_from="a@b",
                         rcpt_tos=["c@d"], received_at=qapp.clock.now())
    ctx.identity.account = "alice"
    assert stage.run(ctx) is None
    service.accounts_edit(ROOT, "alice", state="block")
    finding = stage.run(ctx)
    assert finding and finding.reason == "blocked" and finding.action is Action.QUARANTINE
    assert events(qapp, "account_blocked") == [{"account": "alice", "actor": "root"}]
    assert service.accounts_list(ROOT)["items"][0]["state"] == "block"
    service.accounts_edit(ROOT, "alice", state="active")
    assert stage.run(ctx) is None
    assert "blocked" not in [s.name for s in qapp.stages(Direction.INCOMING)]


def test_sweeper_removes_only_old_orphans(qapp):
    import os
    import time

    held = hold(qapp)
    qdir = qapp.data_dir / "quarantine"
    orphan, fresh = qdir / str(uuid.uuid4()), qdir / str(uuid.uuid4())
    orphan.write_bytes(b"left by a crash")
    fresh.write_bytes(b"being held right now")
    (qdir / ".tmp-123").write_bytes(b"half written")
    (qdir / "README").write_bytes(b"not ours")
    old = time.time() - 7200
    for p in (orphan, qdir / ".tmp-123", qdir / "README", qdir / held):
        os.utime(p, (old, old))
    assert sorted(sweep(qapp)) == sorted([orphan.name, ".tmp-123"])
    assert (qdir / held).exists() and fresh.exists() and (qdir / "README").exists()


def test_migration_downgrades_and_upgrades(qapp):
    held = hold(qapp)

    def used() -> int:
        with qapp.db.session() as s:
            return s.scalar(select(QuarantineAccount.used_bytes)
                            .where(QuarantineAccount.name == "alice"))

    migrate.downgrade(qapp.db, "quarantine@-1")  # the filters' index
    assert "0013_quarantine_used_bytes" in migrate.current_heads(qapp.db)
    migrate.downgrade(qapp.db, "quarantine@-1")  # the used bytes
    assert "0012_quarantine_list_indexes" in migrate.current_heads(qapp.db)
    migrate.upgrade(qapp.db)  # counts what is held
    assert used() == len(message())
    migrate.downgrade(qapp.db, "quarantine@-3")  # and the list indexes
    assert "0010_quarantine_direction" in migrate.current_heads(qapp.db)
    migrate.downgrade(qapp.db, "quarantine@-1")  # the direction column
    assert "0002_quarantine" in migrate.current_heads(qapp.db)
    migrate.upgrade(qapp.db)  # a row held before the column existed is outgoing
    with qapp.db.session() as s:
        assert s.get(HeldMessage, held).direction == "outgoing"
    assert used() == len(message())
    migrate.downgrade(qapp.db, "quarantine@-5")
    assert "0002_quarantine" not in migrate.current_heads(qapp.db)
    migrate.upgrade(qapp.db)
    assert "0014_quarantine_filter_index" in migrate.current_heads(qapp.db)
    with qapp.db.session() as s:
        assert s.scalars(select(HeldMessage)).all() == []


def test_history_shows_who_took_what_out_and_when(qapp, service, clock):
    a, b, c = hold(qapp), hold(qapp), hold(qapp, account="bob")
    service.emails_release(ALICE, a)
    clock.advance(minutes=5)
    service.emails_remove(ROOT, b)
    service.emails_remove(ROOT, c)
    mine = service.emails_history(ALICE)
    assert [(i["email_id"], i["action"], i["actor"]) for i in mine["items"]] == [
        (b, "deleted", "root"), (a, "released", "alice")]
    assert mine["items"][1]["recipients"] == ["bob@example.org", "hidden@example.net"]
    assert service.emails_history(ROOT)["max_count"] == 3
    assert [i["email_id"] for i in service.emails_history(ROOT, since="4m")["items"]] == [c, b]
    with pytest.raises(PermissionDenied):
        service.emails_history(ALICE, account="bob")


def test_the_largest_releases_limit_is_stored(qapp, service):
    service.accounts_edit(ROOT, "alice", releases_limit="2147483647")
    assert service.accounts_list(ROOT, "alice")["items"][0]["releases_limit"] == 2**31 - 1


def _wait_until_blocked(app) -> None:
    """Until another connection waits for a row lock (PostgreSQL); SQLite: a moment."""
    if app.db.is_sqlite:
        time.sleep(0.5)
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with app.db.engine.connect() as conn:
            if conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                "current_database() AND wait_event_type = 'Lock'")):
                return
        time.sleep(0.05)
    raise AssertionError("the hold never waited for the claimed row")


def test_eviction_skips_a_row_a_release_claims_meanwhile(qapp, service, clock):
    service.accounts_edit(ROOT, "alice", limit=str(50 * 1024))
    first = hold(qapp, raw=message(size=20 * 1024))
    clock.advance(seconds=10)
    second = hold(qapp, raw=message(size=20 * 1024))
    clock.advance(seconds=10)
    done: list[str] = []
    worker = threading.Thread(target=lambda: done.append(
        hold(qapp, raw=message(size=20 * 1024))))  # 60 KB > 50 KB: the oldest must go
    with qapp.db.session() as s:  # a release claims the oldest, not yet committed
        s.execute(update(HeldMessage).where(HeldMessage.id == first)
                  .values(state="releasing", claimed_at=clock.now()))
        s.flush()
        worker.start()
        _wait_until_blocked(qapp)
    worker.join(30)
    assert done, "the hold failed"
    with qapp.db.session() as s:
        assert s.get(HeldMessage, first).state == "releasing"
        assert s.get(HeldMessage, second) is None
    assert [e["id"] for e in events(qapp, "evicted")] == [second]
    assert (qapp.data_dir / "quarantine" / first).exists()


def test_sweeper_reads_the_held_ids_once(qapp):
    held = [hold(qapp) for _ in range(3)]
    qdir = qapp.data_dir / "quarantine"
    orphans = [qdir / str(uuid.uuid4()) for _ in range(3)]
    old = time.time() - 7200
    for path in orphans + [qdir / h for h in held]:
        path.touch()
        os.utime(path, (old, old))
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        if "quarantine_messages" in statement:
            statements.append(statement)

    event.listen(qapp.db.engine, "before_cursor_execute", seen)
    try:
        assert sorted(sweep(qapp)) == sorted(p.name for p in orphans)
        assert len(statements) == 1
        assert all((qdir / h).exists() for h in held)
        assert sweep(qapp) == [] and len(statements) == 2  # each sweep reads them afresh
    finally:
        event.remove(qapp.db.engine, "before_cursor_execute", seen)


def test_accounts_list_pages_by_name_and_sums_only_the_listed_accounts(qapp, service):
    for name in ("carol", "alice", "bob", "dave"):
        hold(qapp, account=name)
    everything = service.accounts_list(ROOT)
    assert [a["name"] for a in everything["items"]] == ["alice", "bob", "carol", "dave"]
    assert everything["max_count"] == 4
    page = service.accounts_list(ROOT, limit=2, offset=1)
    assert [a["name"] for a in page["items"]] == ["bob", "carol"]
    assert page["max_count"] == 4
    assert [a["used_bytes"] for a in page["items"]] == [
        a["used_bytes"] for a in everything["items"][1:3]]
    assert all(a["used_bytes"] > 0 for a in page["items"])
    with pytest.raises(InvalidInput):
        service.accounts_list(ROOT, limit="-1")
