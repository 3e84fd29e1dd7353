"""What a client can make the filter hold: sessions (``filter.max_sessions``), reinjection
connections (none while a session idles), memory (bodies over ``filter.spool_threshold``
go to a private file in the data directory), and an address it may not send."""

from __future__ import annotations

import os
import smtplib
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from ie_core import App, Direction, Finding, MessageContext, Stage, hookimpl
from tests.fixtures.sink import LenientSMTP, SinkHandler, free_port

MSG = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: legit\r\n\r\nHello.\r\n"


class Idler:
    """A client that says EHLO, MAIL and RCPT, then sits on the session."""

    def __init__(self, port: int, rcpt: str = "idle@example.org") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()
        if not self.greeting.startswith(b"220"):
            return
        self.command(b"EHLO idler")
        assert self.command(b"MAIL FROM:<idle@example.com>").startswith(b"250")
        assert self.command(f"RCPT TO:<{rcpt}>".encode()).startswith(b"250")

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        while True:
            reply = self.file.readline()
            if reply[3:4] != b"-":
                return reply

    def closed_by_server(self) -> bool:
        self.sock.settimeout(5)
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def idlers() -> Iterator[list[Idler]]:
    made: list[Idler] = []
    yield made
    for idler in made:
        idler.close()


def test_sessions_over_the_cap_get_421_and_a_legit_message_goes_through(run_daemon, sink,
                                                                        idlers):
    d = run_daemon(**{"filter.max_sessions": 3})
    idlers.extend(Idler(d.outgoing_port) for _ in range(3))
    assert all(i.greeting.startswith(b"220") for i in idlers)
    over = Idler(d.outgoing_port)
    idlers.append(over)
    assert over.greeting.startswith(b"421 4.3.2"), over.greeting
    assert over.closed_by_server()
    idlers[2].command(b"QUIT")  # a slot frees once a session ends
    time.sleep(0.2)
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
        assert s.sendmail("a@example.com", ["b@example.org"], MSG) == {}
    [got] = sink.wait_for(1)
    assert got.rcpt_tos == ["b@example.org"]


class CountingSMTP(LenientSMTP):
    """A reinjection MTA with few processes: past ``limit`` connections at once it greets
    with 421 and hangs up (Postfix's reinjection smtpd has maxproc 10)."""

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        handler = self.event_handler
        assert isinstance(handler, CountingHandler)
        with handler.lock:
            handler.open += 1
            handler.peak = max(handler.peak, handler.open)
            self.over = handler.open > handler.limit
        if self.over:
            transport.write(b"421 4.3.2 Too many connections\r\n")
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, error):  # type: ignore[no-untyped-def]
        handler = self.event_handler
        assert isinstance(handler, CountingHandler)
        with handler.lock:
            handler.open -= 1
        if not self.over:
            super().connection_lost(error)


class CountingHandler(SinkHandler):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.open, self.peak = limit, 0, 0


class CountingController(Controller):
    def factory(self) -> SMTP:
        return CountingSMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def small_mta() -> Iterator[tuple[CountingHandler, int]]:
    handler = CountingHandler(limit=3)
    controller = CountingController(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def test_sessions_holding_rcpt_do_not_hold_reinjection_connections(run_daemon, small_mta,
                                                                   idlers):
    handler, port = small_mta
    d = run_daemon(**{"filter.reinject": f"127.0.0.1:{port}"})
    idlers.extend(Idler(d.outgoing_port, f"idle{i}@example.org") for i in range(6))
    time.sleep(0.3)
    assert handler.open <= 1, "idle sessions hold reinjection connections"
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
        assert s.sendmail("a@example.com", ["b@example.org", "c@example.org"], MSG) == {}
    [got] = handler.messages
    assert got.rcpt_tos == ["b@example.org", "c@example.org"]
    assert handler.peak <= 2


def test_a_refused_recipient_is_still_refused_at_rcpt(run_daemon, sink):
    d = run_daemon()
    sink.handler.refuse.add("gone@example.org")
    sink.handler.defer.add("busy@example.org")
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
        s.ehlo()
        assert s.mail("a@example.com")[0] == 250
        assert s.rcpt("gone@example.org")[0] == 550
        assert s.rcpt("busy@example.org")[0] == 450
        assert s.rcpt("b@example.org")[0] == 250
        assert s.data(MSG)[0] == 250
    [got] = sink.wait_for(1)
    assert got.rcpt_tos == ["b@example.org"]


class SpoolWatcher:
    """A stage that notes which open files of this process lie in the spool directory
    (and their mode) while a message is being processed."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    @hookimpl
    def ie_stages(self, app: App) -> list[Stage]:
        spool = str(app.config.data_dir / "spool")

        def look(ctx: MessageContext) -> Finding | None:
            for fd in os.listdir("/proc/self/fd"):
                try:
                    target = os.readlink(f"/proc/self/fd/{fd}")
                    mode = os.stat(f"/proc/self/fd/{fd}").st_mode
                except OSError:
                    continue
                if target.startswith(spool + "/"):
                    self.seen.append((target, stat.S_IMODE(mode)))
            return None
        return [Stage("spoolwatch", look, frozenset({Direction.OUTGOING}), 500)]


def big_message() -> bytes:
    lines = [b"From: a@example.com", b"Subject: big", b"", b".starts with a dot",
             b"..two dots", b". a dot and text", b"\xe9t\xe9 8-bit"]
    lines += [b"line %06d " % i + b"x" * 60 for i in range(40_000)]
    lines += [b"." + b"y" * 5000, b"last line"]
    return b"\r\n".join(lines) + b"\r\n"


def test_a_body_over_the_threshold_is_spooled_privately_and_delivered_byte_identical(
        run_daemon, sink, tmp_path: Path):
    watcher = SpoolWatcher()
    d = run_daemon(plugins=[("spoolwatch", watcher)],
                   **{"filter.spool_threshold": 65536})
    raw = big_message()
    assert len(raw) > 2_000_000
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=30) as s:
        assert s.sendmail("a@example.com", ["b@example.org"], raw) == {}
        assert s.sendmail("a@example.com", ["c@example.org"], MSG) == {}
    big, small = sink.wait_for(2)
    assert big.data.endswith(raw) and small.data.endswith(MSG)
    assert b"X-IE-Filter-Action: deliver" in big.data[:len(big.data) - len(raw)]
    [(path, mode)] = watcher.seen  # the big one only; the small one stayed in memory
    assert mode == 0o600 and path.endswith("(deleted)")
    spool = tmp_path / "data" / "spool"
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert list(spool.iterdir()) == []


def test_the_size_limit_holds_with_a_spooled_body(run_daemon, sink):
    d = run_daemon(**{"filter.spool_threshold": 1000, "filter.max_message_size": 50_000})
    body = b"From: a@example.com\r\n\r\n" + (b"z" * 78 + b"\r\n") * 700
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=30) as s:
        s.ehlo()
        s.mail("a@example.com")
        s.rcpt("b@example.org")
        code, text = s.data(body)
        assert code == 552 and text.startswith(b"5.3.4")
        assert s.sendmail("a@example.com", ["b@example.org"], MSG) == {}
    assert len(sink.wait_for(1)) == 1


@pytest.mark.parametrize("where", ["MAIL", "RCPT"])
def test_a_utf8_address_without_smtputf8_is_refused_permanently(run_daemon, sink, where):
    d = run_daemon()
    sender, rcpt = (("jörg@bücher.example", "b@example.org") if where == "MAIL"
                    else ("a@example.com", "empfänger@example.org"))
    with socket.create_connection(("127.0.0.1", d.outgoing_port), timeout=10) as sock:
        f = sock.makefile("rb")

        def command(line: str) -> bytes:
            sock.sendall(line.encode() + b"\r\n")
            while (reply := f.readline())[3:4] == b"-":
                pass
            return reply

        f.readline()
        command("EHLO client")
        first = command(f"MAIL FROM:<{sender}>")
        reply = first if where == "MAIL" else command(f"RCPT TO:<{rcpt}>")
        assert reply.startswith(b"553 5.6.7"), reply
        # the session goes on: the same message with SMTPUTF8 is delivered
        command("RSET")
        assert command(f"MAIL FROM:<{sender}> SMTPUTF8").startswith(b"250")
        assert command(f"RCPT TO:<{rcpt}>").startswith(b"250")
        assert command("DATA").startswith(b"354")
        sock.sendall(MSG + b".\r\n")
        assert f.readline().startswith(b"250")
        command("QUIT")
    [got] = sink.wait_for(1)
    assert (got.mail_from, got.rcpt_tos) == (sender, [rcpt])
