"""What ``emails show`` prints for a message's headers."""

from __future__ import annotations

from datetime import UTC, datetime

import ie_core.message
from ie_core import Direction, MessageContext
from ie_plugins.quarantine import view


def ctx(raw: bytes) -> MessageContext:
    return MessageContext(direction=Direction.OUTGOING, raw=raw, mail_from="a@example.com",
                          rcpt_tos=["b@example.org"], received_at=datetime.now(UTC))


def test_headers_in_order_decoded_with_repeated_names():
    raw = (b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"Subject: =?utf-8?q?h=C3=A9llo?= world\r\n"
           b"received: from c\r\n  by d\r\n"
           b"X-Raw: caf\xe9 8-bit\r\n"
           b"From: Alice <alice@example.com>\r\n"
           b"\r\nbody\r\n")
    assert view.headers(ctx(raw)) == [
        {"name": "Received", "value": "from a by b; Mon, 1 Jan 2024 00:00:00 +0000"},
        {"name": "Subject", "value": "héllo world"},
        {"name": "received", "value": "from c by d"},
        {"name": "X-Raw", "value": "caf\ufffd 8-bit"},
        {"name": "From", "value": "Alice <alice@example.com>"},
    ]


def test_thousands_of_headers_are_all_there_each_decoded_once(monkeypatch):
    count = 4000
    raw = b"".join(b"Received: from host%d by mx; hop %d\r\n" % (i, i) for i in range(count))
    raw += b"Subject: many hops\r\nReceived: last\r\n\r\nbody\r\n"
    calls = 0

    def counting(value: object) -> str:
        nonlocal calls
        calls += 1
        return decode(value)

    decode = ie_core.message.decode_header_value
    monkeypatch.setattr(ie_core.message, "decode_header_value", counting)
    monkeypatch.setattr(view, "decode_header_value", counting, raising=False)
    shown = view.headers(ctx(raw))
    expected = [{"name": "Received", "value": f"from host{i} by mx; hop {i}"}
                for i in range(count)]
    expected += [{"name": "Subject", "value": "many hops"},
                 {"name": "Received", "value": "last"}]
    assert shown == expected
    assert calls == len(expected)  # one decode per header, not one per header per same name
