"""Incoming quarantine and trainers end to end: real Postfix -> ie-filterd -> Postfix ->
Dovecot (LMTP, Sieve, IMAPSieve).

Quarantine: a GTUBE message to two recipients of different accounts: held for the one whose account
quarantines incoming mail, filed into Junk for the other (its account turned incoming
quarantine off); listed in the first owner's digest, which itself arrives through Postfix
in the owner's mailbox; released by the command, it lands in that recipient's INBOX only.
Trainers: with ``incoming.trainers`` naming Bob, Alice's move into Junk teaches nothing
(and is recorded with her name), Bob's does.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ie_core import App, ManualClock
from ie_core.db.models import Event as EventRow
from tests.integration.test_incoming_e2e import (
    ALICE,
    BOB,
    CAROL,
    Stack,
    _move,
    gtube,
    incoming_stack,
    message,
)
from tests.integration.test_quarantine_daemon import Cli
from tests.integration.test_quarantine_isolation import public_dir, unix_users  # noqa: F401

pytestmark = pytest.mark.mta


@pytest.fixture
def qstack(run_daemon: Callable[..., Any], tmp_path: Path, clock: ManualClock,
           db_url: str, public_dir: Path) -> Iterator[Stack]:  # noqa: F811
    """The incoming stack, with ie-cli's outgoing reinjection (the digests) also going to
    Postfix's reinjection port, so a digest is delivered into the owner's mailbox, and
    the quarantine's socket in ``public_dir`` for owners' commands; the configuration is
    readable by everybody (``public_dir/ie.toml``)."""
    clock.advance(seconds=(datetime.now(UTC) - clock.now()).total_seconds())
    socket_path = public_dir / "run" / "cli.sock"
    config = public_dir / "ie.toml"
    with incoming_stack(run_daemon, tmp_path, db_url, [ALICE, BOB, CAROL],
                        ["example.test", "other.test"], config=config,
                        incoming=f'learn_interval = 0.1\ntrainers = "{BOB}, %ie-no-such-group"\n',
                        sections='[filter]\nreinject = "{reinject}"\n'
                                 'incoming_reinject = "{reinject}"\n'
                                 f'[quarantine]\ncli_socket = "{socket_path}"\n',
                        **{"quarantine.cli_socket": str(socket_path)}) as st:
        os.chmod(config, 0o644)
        yield st


def _held(stack: Stack, *args: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(stack.cli("emails", "list", "--json",
                                                       *args))["items"]
    return items


def test_held_for_one_recipient_delivered_to_the_other_digest_and_release(
        qstack: Stack, unix_users: list[tuple[str, int, int]]) -> None:  # noqa: F811
    """The owner of example.test's account is a real Unix user: it lists and releases
    its held mail with its own ie-cli, through the quarantine's socket."""
    stack = qstack
    (acme, uid, gid), _ = unix_users
    owner = Cli(stack.config, (uid, gid))
    stack.config_cmd("enable-incoming")
    stack.cli("domains", "set", "example.test", acme)
    stack.cli("domains", "set", "other.test", "beta")
    stack.cli("accounts", "edit", "-a", acme, "--owner-email", ALICE)
    stack.cli("accounts", "edit", "-a", "beta", "--incoming-quarantine", "off")
    stack.cli("filter-settings", "--incoming-quarantine-threshold", "500")
    assert "incoming.quarantine_threshold" in stack.cli("filter-settings")

    stack.send(gtube("gtube for two"), ALICE, CAROL)
    stack.send(message("plain hello"), ALICE, CAROL)
    stack.wait(CAROL, "Junk", "gtube for two")  # beta: no incoming quarantine
    stack.wait(ALICE, "INBOX", "plain hello")
    stack.wait(CAROL, "INBOX", "plain hello")
    assert stack.dovecot.subjects(ALICE, "INBOX") == ["plain hello"]
    assert stack.dovecot.subjects(ALICE, "Junk") == []

    [held] = owner.json("emails", "list", "--direction", "incoming")["items"]
    assert (held["account_name"], held["direction"], held["recipients"], held["subject"]) == (
        acme, "incoming", [ALICE], "gtube for two")
    assert [i["email_id"] for i in _held(stack)] == [held["email_id"]]
    assert held["score"] >= 500
    assert _held(stack, "--direction", "outgoing") == []
    assert "Direction\t      incoming" in stack.cli("emails", "list")
    [carol_copy] = stack.dovecot.messages(CAROL, "Junk")
    assert ALICE.encode() not in carol_copy.split(b"\r\n\r\n", 1)[0]

    out = json.loads(stack.cli("notify", "send", "--account", acme, "--json"))
    assert [(i["scope"], i["messages"], i["status"]) for i in out["items"]] == [
        (f"owner:{acme}", 1, "sent")]
    deadline = time.monotonic() + 10
    while not (digests := [m for m in stack.dovecot.messages(ALICE, "INBOX")
                           if b"X-IE-Notification: owner_digest" in m]):
        assert time.monotonic() < deadline, stack.postfix.log_text()[-3000:]
        time.sleep(0.05)
    [digest] = digests
    assert b"Subject: 1 incoming message held as spam on" in digest
    parsed = email.message_from_bytes(digest, policy=email.policy.default)
    body = parsed.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    for expected in ("gtube for two", "sender@outside.test", held["email_id"],
                     "Score:      1000", f"ie-cli emails release --ids {held['email_id']}"):
        assert expected in text, expected

    assert owner("emails", "release", "--ids", held["email_id"]).stdout == b"OK\n"
    stack.wait(ALICE, "INBOX", "gtube for two")
    assert stack.dovecot.subjects(ALICE, "Junk") == []
    assert sorted(stack.dovecot.subjects(CAROL, "Junk")) == ["gtube for two"]  # once
    assert _held(stack) == []
    [released] = json.loads(stack.cli("emails", "history", "--json"))["items"]
    assert (released["action"], released["direction"], released["actor"]) == (
        "released", "incoming", acme)


def test_a_move_by_a_user_outside_the_trainers_is_not_learned(
        qstack: Stack, make_app: Callable[..., App], db_url: str) -> None:
    stack = qstack
    stack.config_cmd("enable-incoming")
    stack.send(message("alice thinks spam"), ALICE)
    stack.send(message("bob thinks spam"), BOB)
    stack.wait(ALICE, "INBOX", "alice thinks spam")
    stack.wait(BOB, "INBOX", "bob thinks spam")
    assert stack.classifier_counts() == (0, 0)
    for user, subject in ((ALICE, "alice thinks spam"), (BOB, "bob thinks spam")):
        imap = stack.dovecot.imap(user)
        try:
            _move(imap, "INBOX", subject, "Junk")
        finally:
            imap.logout()
    deadline = time.monotonic() + 10
    while stack.spool_files():  # both reports taken from the spool
        assert time.monotonic() < deadline, stack.spool_files()
        time.sleep(0.05)
    stack.wait_counts((0, 1))  # Bob's report only
    app = make_app(config=stack.config, db_url=db_url)
    with app.db.session() as s:
        refused = s.scalars(select(EventRow.payload).where(EventRow.kind == "learn_refused"))
        assert list(refused) == [{"user": ALICE, "label": "spam"}]
