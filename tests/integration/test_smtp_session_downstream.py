"""A reinjection connection belongs to one client session: when the MTA drops the session
while the downstream is still answering MAIL or RCPT, that connection is closed once the
answer comes, and the next session's message goes out with its own envelope."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import threading
import time
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.fixtures.sink import LenientSMTP, SinkHandler, free_port

SLOW_SENDER = "old@example.com"
SLOW_RCPT = "slow@example.org"
DELAY = 1.5
MSG = b"From: new@example.com\r\nTo: b@example.org\r\nSubject: t\r\n\r\nbody\r\n"


class SlowHandler(SinkHandler):
    """Answers MAIL from SLOW_SENDER, or RCPT to SLOW_RCPT, DELAY seconds late; records
    which connection (peer) sent which MAIL and which connections ended."""

    def __init__(self, slow: str) -> None:
        super().__init__()
        self.slow = slow
        self.mails: list[tuple[str, Any]] = []
        self.ended: list[Any] = []

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        self.mails.append((address, session.peer))
        if self.slow == "MAIL" and address == SLOW_SENDER:
            await asyncio.sleep(DELAY)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.slow == "RCPT" and address == SLOW_RCPT:
            await asyncio.sleep(DELAY)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class TrackingSMTP(LenientSMTP):
    def connection_lost(self, error: Exception | None) -> None:
        handler = self.event_handler
        if isinstance(handler, SlowHandler) and self.session is not None:
            handler.ended.append(self.session.peer)
        super().connection_lost(error)


class TrackingController(Controller):
    def factory(self) -> SMTP:
        return TrackingSMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture(params=["MAIL", "RCPT"])
def slow_sink(request: pytest.FixtureRequest):
    handler = SlowHandler(request.param)
    controller = TrackingController(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def drop_mid_rcpt(port: int) -> None:
    """A client that sends MAIL and RCPT, then vanishes before the RCPT reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()  # greeting
        sock.sendall(b"HELO client\r\n")
        f.readline()
        sock.sendall(f"MAIL FROM:<{SLOW_SENDER}>\r\n".encode())
        assert f.readline().startswith(b"250")
        sock.sendall(f"RCPT TO:<{SLOW_RCPT}>\r\n".encode())
        time.sleep(DELAY / 3)  # the filter now waits for the downstream's reply


def wait_until(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_connection_answered_after_the_client_left_is_closed_not_reused(run_daemon,
                                                                           slow_sink):
    handler, port = slow_sink
    d = run_daemon(**{"filter.reinject": f"127.0.0.1:{port}"})
    drop_mid_rcpt(d.outgoing_port)
    assert wait_until(lambda: any(a == SLOW_SENDER for a, _ in handler.mails))
    [stale] = [peer for address, peer in handler.mails if address == SLOW_SENDER]
    assert wait_until(lambda: stale in handler.ended), "the stale downstream stays open"

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=30) as s:
            assert s.sendmail("new@example.com", ["b@example.org"], MSG) == {}

    threads = [threading.Thread(target=send) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    got = handler.messages
    assert len(got) == 3
    assert all((m.mail_from, m.rcpt_tos) == ("new@example.com", ["b@example.org"])
               for m in got)
