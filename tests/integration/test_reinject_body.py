"""The reinjection body goes out in pieces, dot-stuffed across piece boundaries, and a
message is never half-delivered by a recipient that changed its mind between RCPT and
DATA."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest

from ie_core.smtp.reinject import Reinjector

MSG = (b"From: a@example.com\r\nSubject: dots\r\n\r\n.first\r\nabcd\r\n.x\r\n..y\r\n"
       b"end.\r\n.\r\nno final line end")


@pytest.mark.parametrize("chunk", [1, 3, 5, 1 << 20])
def test_pieces_are_dot_stuffed_across_boundaries(sink, chunk):
    r = Reinjector("127.0.0.1", sink.port, timeout=5.0, idle=30.0, helo="ie.test")
    try:
        conn, reply = r.open("a@example.com")
        assert reply.ok and conn.rcpt("b@example.org").ok
        assert conn.begin_data().code == 354
        conn.send_body([MSG[:17], memoryview(MSG)[17:]], chunk=chunk)
        assert conn.end_data().ok
        r.release(conn)
    finally:
        r.close()
    [got] = sink.wait_for(1)
    assert got.data == MSG + b"\r\n"


def test_a_recipient_refused_at_delivery_gives_451_and_nothing_is_delivered(run_daemon,
                                                                          sink):
    """b@ is accepted when its RCPT is checked and refused when the message goes out: the
    MTA gets 451 for the whole message (nobody has it yet) and retries."""
    seen: dict[str, int] = {}
    original = sink.handler.handle_RCPT

    async def fickle(server: Any, session: Any, envelope: Any, address: str,
                     options: list[str]) -> str:
        seen[address] = seen.get(address, 0) + 1
        if address == "b@example.org" and seen[address] > 1:
            return "550 5.1.1 Gone since"
        result: str = await original(server, session, envelope, address, options)
        return result

    sink.handler.handle_RCPT = fickle  # type: ignore[method-assign]
    d = run_daemon()
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
        s.ehlo()
        s.mail("a@example.com")
        assert s.rcpt("a2@example.org")[0] == 250
        assert s.rcpt("b@example.org")[0] == 250
        code, text = s.data(b"Subject: x\r\n\r\nbody\r\n")
    assert code == 451 and text.startswith(b"4.3.0"), (code, text)
    assert sink.messages == []
