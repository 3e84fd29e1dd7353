"""Incoming mail whose recipients get different verdicts is delivered as one copy per
verdict group, so no copy names another recipient (a Bcc stays blind), and the reply
follows every group's downstream answer."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from typing import Any

import pytest

from ie_core import App
from ie_core.db.models import Account, DomainMap
from ie_plugins.incoming.models import IncomingAccount
from ie_plugins.incoming.policy import ENABLED
from tests.fixtures.sink import Sink
from tests.unit.test_incoming import Junker

ALICE, BOB, CAROL = "alice@example.test", "bob@other.test", "carol@example.test"


def message(to: str, body: str = "SPAMMY offer") -> bytes:
    return (f"From: someone@outside.test\r\nTo: {to}\r\nSubject: hi\r\n\r\n{body}\r\n"
            ).encode()


@pytest.fixture
def incoming(run_daemon: Callable[..., Any]) -> Any:
    """A daemon with incoming filtering on: example.test is account acme (filtered),
    other.test is beta (opted out)."""
    d = run_daemon(plugins=[("junker", Junker())])
    app: App = d.app
    app.settings.set(ENABLED.name, True)
    with app.db.session() as s:
        s.add_all([Account(name="acme", created_at=app.clock.now()),
                   Account(name="beta", created_at=app.clock.now())])
        s.flush()
        s.add_all([DomainMap(domain="example.test", account="acme"),
                   DomainMap(domain="other.test", account="beta"),
                   IncomingAccount(account="beta", enabled=False,
                                   updated_at=app.clock.now())])
    return d


def send(d: Any, raw: bytes, *rcpts: str) -> dict[str, Any]:
    with smtplib.SMTP("127.0.0.1", d.incoming_port, timeout=10) as s:
        return s.sendmail("someone@outside.test", list(rcpts), raw)


def by_rcpt(sink: Sink, count: int) -> dict[tuple[str, ...], bytes]:
    got = sink.wait_for(count)
    assert len(got) == count, [m.rcpt_tos for m in got]
    return {tuple(m.rcpt_tos): m.data for m in got}


def junk_marks(data: bytes) -> list[bytes]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
            if line.lower().startswith(b"x-ie-junk:")]


def test_a_bcc_recipient_with_another_verdict_gets_its_own_copy(incoming, sink):
    # To: alice (filtered: junk), Bcc: bob (opted out: inbox)
    raw = message(ALICE)
    assert send(incoming, raw, ALICE, BOB) == {}
    copies = by_rcpt(sink, 2)
    assert junk_marks(copies[(ALICE,)]) == [b"all"]
    assert junk_marks(copies[(BOB,)]) == []
    assert ALICE.encode() not in copies[(BOB,)].replace(raw, b"")  # nothing but the original
    assert BOB.encode() not in copies[(ALICE,)]
    assert copies[(ALICE,)].endswith(raw) and copies[(BOB,)].endswith(raw)


def test_a_bcc_recipient_marked_junk_is_not_named_in_the_others_copy(incoming, sink):
    # To: bob (opted out), Bcc: alice and carol (filtered: junk, one copy for both)
    raw = message(BOB)
    assert send(incoming, raw, BOB, ALICE, CAROL) == {}
    copies = by_rcpt(sink, 2)
    assert junk_marks(copies[(ALICE, CAROL)]) == [b"all"]
    bob_copy = copies[(BOB,)]
    assert junk_marks(bob_copy) == []
    assert ALICE.encode() not in bob_copy and CAROL.encode() not in bob_copy
    assert BOB.encode() not in copies[(ALICE, CAROL)].replace(raw, b"")


def test_one_verdict_for_everyone_is_one_transaction(incoming, sink):
    assert send(incoming, message(ALICE), ALICE, CAROL) == {}
    assert send(incoming, message(ALICE, "a nice note"), ALICE, BOB) == {}
    copies = by_rcpt(sink, 2)
    assert junk_marks(copies[(ALICE, CAROL)]) == [b"all"]
    assert junk_marks(copies[(ALICE, BOB)]) == []


def test_a_group_refused_at_the_final_dot_is_answered_with_its_reply(incoming, sink):
    """The junk copy is accepted, bob's copy is refused at the end of DATA: the MTA
    gets bob's 4xx (so it retries) and nothing is lost."""
    original = sink.handler.handle_DATA

    async def refuse_bob(server: Any, session: Any, envelope: Any) -> str:
        if BOB in envelope.rcpt_tos:
            return "452 4.2.2 Mailbox full"
        result: str = await original(server, session, envelope)
        return result

    sink.handler.handle_DATA = refuse_bob  # type: ignore[method-assign]
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(incoming, message(ALICE), ALICE, BOB)
    assert err.value.smtp_code == 452
    [got] = sink.wait_for(1)
    assert got.rcpt_tos == [ALICE]
