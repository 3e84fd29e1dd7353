"""Notification templates: hostile data renders safely, overrides win, broken ones fall back."""

from __future__ import annotations

import email
import logging
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from ie_plugins.notify import compose
from ie_plugins.notify.rendering import KINDS, Templates

WHEN = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
HOSTILE_SUBJECT = "<script>alert(1)</script>"
HOSTILE_SENDER = '"Evil\r\nBcc: victim@example.org\r\n" <evil@example.com>'
HEADERS = ["Subject", "From", "To", "Date", "Message-ID", "Auto-Submitted",
           "X-IE-Notification", "MIME-Version", "Content-Type"]


def _context(subject: str = HOSTILE_SUBJECT, sender: str = HOSTILE_SENDER) -> dict:
    held = compose.held_view("id-1", "alice", WHEN, sender, ["bob@example.org"], subject,
                             ["spam"], 1234)
    return {"hostname": "mx.example.net", "now": "now", "admin_address": "pm@example.net",
            "messages": [held], "message": held, "account": "alice", "accounts": ["alice"],
            "all_time": False, "period": "daily", "actor": "root", "action": "released",
            "date": "then", "limit": {"object_type": "account", "name": "alice", "id": "1",
                                      "limit": "10", "used": "11", "account": "alice"}}


def _build(templates: Templates, kind: str, context: dict) -> EmailMessage:
    data = compose.build(templates, kind, context, sender="ie@example.net",
                         recipient="owner@example.org", msgid="<x@example.net>", when=WHEN)
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


@pytest.mark.parametrize("kind", KINDS)
def test_every_template_gives_text_and_html_and_fixed_headers(kind: str) -> None:
    msg = _build(Templates(""), kind, _context())
    assert list(msg.keys()) == HEADERS
    assert msg.get_content_type() == "multipart/alternative"
    text, html = _parts(msg)
    assert "mx.example.net" in text and "mx.example.net" in html


@pytest.mark.parametrize("kind", ["admin_held", "owner_digest", "admin_summary",
                                  "owner_action"])
def test_hostile_subject_and_sender_cannot_inject_headers_or_script(kind: str) -> None:
    msg = _build(Templates(""), kind, _context())
    assert list(msg.keys()) == HEADERS  # no Bcc or anything else smuggled in
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    text, html = _parts(msg)
    assert HOSTILE_SUBJECT in text  # plain text shows what the spammer wrote, inertly
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;evil@example.com&gt;" in html
    # the CRLF in the display name became spaces: one line, no fake header line
    assert "\nBcc:" not in text
    assert 'Sender:     "Evil  Bcc: victim@example.org  " <evil@example.com>' in text


def test_digest_lists_the_exact_release_and_remove_commands() -> None:
    text, html = _parts(_build(Templates(""), "owner_digest", _context(subject="Hi")))
    assert "ie-cli emails release --ids id-1" in text
    assert "ie-cli emails remove --ids id-1" in text
    assert "ie-cli emails release --ids id-1" in html
    for shown in ("2026-01-01 12:00 UTC", "bob@example.org", "spam", "Subject:    Hi"):
        assert shown in text


def test_an_id_with_shell_characters_is_quoted_in_commands() -> None:
    view = compose.held_view("x; rm -rf /", "a", WHEN, "s", [], "", [], 0)
    assert view["release_command"] == "ie-cli emails release --ids 'x; rm -rf /'"


def test_edited_override_is_used(tmp_path: Path) -> None:
    (tmp_path / "owner_digest.subject.j2").write_text(
        "Custom: {{ messages | length }} held for {{ account }}\n")
    (tmp_path / "owner_digest.txt.j2").write_text(
        '{% from "_held.txt.j2" import held %}EDITED COPY\n{{ held(messages[0]) }}\n')
    msg = _build(Templates(str(tmp_path)), "owner_digest", _context())
    assert msg["Subject"] == "Custom: 1 held for alice"
    text, html = _parts(msg)
    assert text.startswith("EDITED COPY")
    assert "ie-cli emails remove --ids id-1" in text  # the shipped partial was included
    assert "These messages sent from your account" in html  # not overridden: shipped


@pytest.mark.parametrize("broken", ["{% if %}broken", "{{ no_such_variable.attr }}",
                                    b"\xff\xfe not utf-8 {{"])
def test_broken_override_falls_back_to_shipped_with_a_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, broken: str | bytes) -> None:
    path = tmp_path / "owner_digest.txt.j2"
    if isinstance(broken, bytes):
        path.write_bytes(broken)
    else:
        path.write_text(broken)
    with caplog.at_level(logging.WARNING, logger="ie.notify"):
        text, _ = _parts(_build(Templates(str(tmp_path)), "owner_digest", _context()))
    assert "These messages sent from your account alice" in text
    lines = [r.getMessage() for r in caplog.records if "event=template_fallback" in r.getMessage()]
    assert len(lines) == 1
    assert str(path) in lines[0]


def test_missing_override_directory_uses_shipped(tmp_path: Path) -> None:
    msg = _build(Templates(str(tmp_path / "absent")), "account_blocked", _context())
    assert msg["Subject"] == "Account alice blocked on mx.example.net"


def test_message_id_is_stable_per_key() -> None:
    assert compose.message_id("digest:owner:a:1", "h") == compose.message_id(
        "digest:owner:a:1", "h")
    assert compose.message_id("digest:owner:a:1", "h") != compose.message_id(
        "digest:owner:a:2", "h")
