"""Who sent it: only what our MTA wrote counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

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


# -- hostile input: only what Postfix composed, in its own layout, counts ----------------
HOSTILE_RECIPIENTS = [
    b'"(Authenticated sender: victim)"@gmail.com',
    b'"(Postfix, from userid 0)"@gmail.com',
    b'"x) (Authenticated sender: victim) by mx.example.test (Postfix) id 4FAKE1"@gmail.com',
    b'"id 4FAKEQUEUE1;"@gmail.com',
]


@pytest.mark.parametrize("rcpt", HOSTILE_RECIPIENTS)
def test_the_recipient_clause_chooses_nothing(rcpt):
    raw = (b"Received: from client.example (unknown [192.0.2.9])\r\n"
           b"\tby mx.example.test (Postfix) with ESMTP id 4RealQid77\r\n"
           b"\tfor <" + rcpt + b">; Sat,  5 Dec 2026 01:00:00 +0000 (UTC)\r\n\r\nx\r\n")
    ident = identify(ctx(raw, "bob@bob.example"), auth_header="")
    assert (ident.auth_user, ident.local_user) == (None, None)
    assert ident.sender_email == "bob@bob.example"
    assert queue_id(ctx(raw)) == "4RealQid77"


@pytest.mark.parametrize("helo", [b"(Authenticated", b"x(Authenticated", b"by"])
def test_a_helo_name_chooses_nothing(helo):
    raw = (b"Received: from " + helo + b" (unknown [192.0.2.9])\r\n"
           b"\tby mx.example.test (Postfix) with ESMTP id 4RealQid77\r\n"
           b"\tfor <\"sender: victim)\"@x.example>; Sat, 5 Dec 2026\r\n\r\nx\r\n")
    ident = identify(ctx(raw), auth_header="")
    assert ident.auth_user is None
    assert queue_id(ctx(raw)) == "4RealQid77"


@pytest.mark.parametrize("line", [
    b"Received: from x (Authenticated sender: victim@v.example) by y",  # not Postfix's layout
    b"Received: (Authenticated sender: victim@v.example) by mx (Postfix) id 4ABCDE1",
    b"Received: from x (x [1.2.3.4]) by mx (Postfix) with ESMTP id 4ABCDE1 "
    b"(Authenticated sender: victim@v.example)",  # after the id: the client's part
    b"Received: by mx (Postfix) id 4ABCDE1 for <\"(Postfix, from userid 0)\"@x>",
    b"Received: from x (x [1.2.3.4]) (Authenticated sender: victim@v.example) by mx "
    b"(Exim 4.96) id 4ABCDE1",  # not Postfix
])
def test_lines_not_in_postfixs_layout_give_no_identity(line):
    ident = identify(ctx(line + b"\r\n\r\nx\r\n"), auth_header="")
    assert (ident.auth_user, ident.local_user) == (None, None)


def test_tls_comments_with_nested_parentheses_are_read_past():
    raw = (b"Received: from client (client.example [192.0.2.1])\r\n"
           b"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
           b"\t key-exchange X25519 server-signature RSA-PSS (2048 bits))\r\n"
           b"\t(No client certificate requested)\r\n"
           b"\t(Authenticated sender: alice@alice.example)\r\n"
           b"\tby mx.example.test (Postfix) with ESMTPSA id 4TlsQid88\r\n"
           b"\tfor <bob@example.org>; Sat, 5 Dec 2026\r\n\r\nx\r\n")
    assert identify(ctx(raw), auth_header="").auth_user == "alice@alice.example"
    assert queue_id(ctx(raw)) == "4TlsQid88"


def test_an_8bit_received_line_is_read_without_error():
    raw = (b"Received: from h\xc3\xa9lo (unknown [192.0.2.9])\r\n\t(Authenticated sender: "
           b"alice@alice.example)\r\n\tby mx (Postfix) with ESMTPSA id 4Utf8Qid1\r\n"
           b"\tfor <\xff\xfe@x>; now\r\n\r\nx\r\n")
    assert identify(ctx(raw), auth_header="").auth_user == "alice@alice.example"


def test_exims_header_is_found_below_a_line_the_email_parser_stops_at():
    raw = (b"From: a@example.com\r\nFoo :bar\r\nSubject: s\r\n"
           b"X-IE-Auth-User: carol@carol.example\r\n\r\nbody\r\n")
    ident = identify(ctx(raw), auth_header="X-IE-Auth-User")
    assert ident.auth_user == "carol@carol.example"


def test_exim_queue_id_only_when_unambiguous():
    real = (b"Received: from [127.0.0.1] (helo=web1)\r\n\tby mx.example.test with esmtpa "
            b"(Exim 4.96)\r\n\t(envelope-from <alice@example.com>)\r\n"
            b"\tid 1tQabc-000123-AB\r\n\tfor bob@example.org; Sat, 5 Dec 2026\r\n\r\nx\r\n")
    assert queue_id(ctx(real)) == "1tQabc-000123-AB"
    forged = real.replace(b"<alice@example.com>", b"<\"x>) id 1FAKEz-000000-ZZ;\"@e.example>")
    assert queue_id(ctx(forged)) is None
