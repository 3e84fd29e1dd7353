"""Who sent it: only what our MTA wrote counts."""

from __future__ import annotations

from datetime import UTC, datetime

from ie_core import Direction, MessageContext
from ie_core.identity import identify, parse_script, queue_id


def ctx(raw: bytes, mail_from: str = "bounce@other.example") -> MessageContext:
    return MessageContext(Direction.OUTGOING, raw, mail_from, ["x@example.org"],
                          datetime.now(UTC))


def test_authenticated_user_from_the_topmost_received_line_only():
    raw = (b"Received: from client (localhost [127.0.0.1])\r\n"
           b"\t(Authenticated sender: alice@alice.example)\r\n"
           b"\tby mx.example.test (Postfix) with ESMTPSA id 4ABCDEF123;\r\n"
           b"\tMon, 1 Jan 2026 10:00:00 +0000 (UTC)\r\n"
           b"Received: from x (Authenticated sender: mallory@victim.example) by y\r\n"
           b"X-IE-Auth-User: mallory@victim.example\r\n\r\nbody\r\n")
    ident = identify(ctx(raw), auth_header="")
    assert ident.auth_user == "alice@alice.example"
    assert ident.sender_email == "alice@alice.example"  # not the envelope sender
    assert ident.domain == "alice.example"
    assert queue_id(ctx(raw)) == "4ABCDEF123"


def test_a_client_written_received_line_below_ours_changes_nothing():
    raw = (b"Received: by mx.example.test (Postfix) id 4XYZ12345; Mon, 1 Jan 2026\r\n"
           b"Received: from evil (Authenticated sender: admin@bank.example) by evil\r\n\r\nx\r\n")
    ident = identify(ctx(raw, "bob@bob.example"), auth_header="")
    assert ident.auth_user is None
    assert ident.sender_email == "bob@bob.example"


def test_pickup_userid_gives_the_local_user():
    raw = b"Received: by mx.example.test (Postfix, from userid 0) id 4AAAAA1; Mon\r\n\r\nx\r\n"
    assert identify(ctx(raw), auth_header="").local_user == "root"


def test_exim_header_mode_reads_only_the_configured_header():
    raw = (b"X-IE-Auth-User: carol@carol.example\r\n"
           b"Received: from c (Authenticated sender: mallory@m.example) by mx\r\n\r\nx\r\n")
    ident = identify(ctx(raw), auth_header="X-IE-Auth-User")
    assert ident.auth_user == "carol@carol.example"


def test_php_script_headers():
    assert parse_script("shop.example/home/shop/public_html/mail.php for 1.2.3.4") == (
        "shop.example", "/home/shop/public_html/mail.php")
    assert parse_script("1001:contact.php") == (None, "contact.php")
    raw = b"X-PHP-Script: shop.example/x.php for 10.0.0.1\r\n\r\nbody\r\n"
    ident = identify(ctx(raw), auth_header="")
    assert ident.script == "shop.example/x.php for 10.0.0.1"
    assert ident.script_domain == "shop.example"
