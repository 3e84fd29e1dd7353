"""A Bcc stays blind through the whole incoming path (Postfix -> ie-filterd -> Postfix ->
Dovecot LMTP -> Sieve): recipients with different verdicts get separate copies, and no
copy in any mailbox names the other recipient."""

from __future__ import annotations

import pytest

from tests.integration.test_incoming_e2e import ALICE, CAROL, Stack, gtube
from tests.integration.test_incoming_e2e import stack as stack  # noqa: F401  (fixture)

pytestmark = pytest.mark.mta


def fetch_all(stack: Stack, user: str, mailbox: str) -> list[bytes]:
    imap = stack.dovecot.imap(user)
    try:
        assert imap.select(mailbox)[0] == "OK"
        _, data = imap.uid("SEARCH", "ALL")
        messages = []
        for uid in data[0].split():
            _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            messages.append(parts[0][1])
        return messages
    finally:
        imap.logout()


def test_bcc_recipients_with_different_verdicts_never_see_each_other(stack: Stack) -> None:
    stack.config_cmd("enable-incoming")
    stack.cli("domains", "set", "example.test", "acme")
    stack.cli("domains", "set", "other.test", "beta")
    stack.cli("accounts", "edit", "-a", "beta", "--incoming", "off")
    # To: alice (filtered: Junk), Bcc: carol (opted out: INBOX); then the other way round
    stack.send(gtube("to alice bcc carol").replace(b"you@example.test", ALICE.encode()),
               ALICE, CAROL)
    stack.send(gtube("to carol bcc alice").replace(b"you@example.test", CAROL.encode()),
               CAROL, ALICE)
    stack.wait(ALICE, "Junk", "to alice bcc carol")
    stack.wait(CAROL, "INBOX", "to alice bcc carol")
    stack.wait(ALICE, "Junk", "to carol bcc alice")
    stack.wait(CAROL, "INBOX", "to carol bcc alice")
    alice, carol = fetch_all(stack, ALICE, "Junk"), fetch_all(stack, CAROL, "INBOX")
    assert len(alice) == len(carol) == 2
    for raw in alice:
        assert b"X-IE-Junk: all" in raw
        assert CAROL.encode() not in raw.replace(b"To: " + CAROL.encode(), b"")
    for raw in carol:
        assert b"X-IE-Junk" not in raw
        assert ALICE.encode() not in raw.replace(b"To: " + ALICE.encode(), b"")
    assert stack.dovecot.subjects(ALICE, "INBOX") == []
    assert stack.dovecot.subjects(CAROL, "Junk") == []
