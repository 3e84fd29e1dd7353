"""Reinjection into the MTA over SMTP, with timeouts and connection reuse.

A connection carries at most ``max_per_connection`` messages and is then closed: MTAs
treat a long-lived connection with many messages differently (Exim queues every message
after the 10th on one connection, ``smtp_accept_queue_per_connection``, instead of
delivering it at once).  It is also closed after :data:`MAX_RESETS` RSETs without a
delivered message (recipient checks end in RSET): Exim drops a client after
``smtp_accept_max_nonmail`` (10) such commands, Postfix slows it down after
``smtpd_junk_command_limit`` (100).

Pooled connections are clean (after an RSET or a completed transaction) and are not
probed when taken: :meth:`Reinjector.open` sends MAIL on one, and when that finds the
connection dead it starts again once on a new connection.

All calls block and run in worker threads.  Every failure becomes a :class:`Reply`
carrying the code the MTA should see: the downstream's own 4xx/5xx when it answered,
``451 4.4.x`` when it could not be reached, hung or broke the connection.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ie_core.config import parse_hostport
from ie_core.replies import BROKEN, NEEDS_SMTPUTF8, TIMED_OUT, UNREACHABLE, Reply

if TYPE_CHECKING:
    from ie_core.app import App

log = logging.getLogger("ie.reinject")


MAX_RESETS = 5
"""RSETs one connection carries between two delivered messages before it is closed."""


@dataclass
class SendResult:
    """What a complete reinjection achieved: all-or-nothing."""

    reply: Reply
    refused: dict[str, Reply] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reply.ok


class DownstreamError(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


class Downstream:
    """One SMTP connection to the reinjection MTA."""

    def __init__(self, host: str, port: int, timeout: float, helo: str) -> None:
        self.created = self.last_used = time.monotonic()
        self.sent = 0  # messages the MTA accepted on this connection
        self.resets = 0  # RSETs since the last accepted message
        self._smtp = smtplib.SMTP(timeout=timeout, local_hostname=helo)
        try:
            self._call(lambda: self._smtp.connect(host, port))
            # The final dot goes out in a small write of its own after the body: with
            # Nagle's algorithm it would wait for the body's ACK, which the MTA delays
            # (about 40 ms a message on Linux).
            if self._smtp.sock is not None:
                self._smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._call(lambda: self._expect(self._smtp.ehlo()))
        except DownstreamError:
            self.close()
            raise

    def _call(self, fn):  # type: ignore[no-untyped-def]
        try:
            return fn()
        except TimeoutError:
            raise DownstreamError(TIMED_OUT) from None
        except (ConnectionRefusedError, socket.gaierror):
            raise DownstreamError(UNREACHABLE) from None
        except UnicodeEncodeError:  # an 8-bit address outside an SMTPUTF8 transaction
            raise DownstreamError(NEEDS_SMTPUTF8) from None
        except smtplib.SMTPServerDisconnected as err:  # smtplib's word for a reply timeout too
            raise DownstreamError(TIMED_OUT if isinstance(err.__context__, TimeoutError)
                                  else BROKEN) from None
        except (ConnectionError, OSError):
            raise DownstreamError(BROKEN) from None

    @staticmethod
    def _expect(resp: tuple[int, bytes]) -> Reply:
        reply = Reply(resp[0], resp[1].decode("utf-8", "replace"))
        if not reply.ok:
            raise DownstreamError(reply)
        return reply

    def _reply(self, resp: tuple[int, bytes]) -> Reply:
        return Reply(resp[0], resp[1].decode("utf-8", "replace"))

    def mail(self, sender: str, options: Sequence[str] = ()) -> Reply:
        opts = [o for o in options if o.upper().split("=")[0] in self.esmtp_mail_params]
        return self._call(lambda: self._reply(self._smtp.mail(sender, opts)))

    @property
    def esmtp_mail_params(self) -> set[str]:
        params = set()
        if self._smtp.has_extn("smtputf8"):
            params.add("SMTPUTF8")
        if self._smtp.has_extn("8bitmime"):
            params.add("BODY")
        return params

    def rcpt(self, address: str, options: Sequence[str] = ()) -> Reply:
        return self._call(lambda: self._reply(self._smtp.rcpt(address, list(options))))

    def data(self, message: bytes,
             before_final_dot: Callable[[], None] | None = None) -> Reply:
        """Send DATA; with ``before_final_dot``, call it after the body and before the
        terminating dot (the MTA's commit point).  If it raises, the connection is closed
        without the dot, so the MTA discards the message, and the exception propagates."""
        reply = self.begin_data()
        if reply.code != 354:
            return reply
        self.send_body([message])
        if before_final_dot is not None:
            try:
                before_final_dot()
            except BaseException:
                self.close()
                raise
        return self.end_data()

    def begin_data(self) -> Reply:
        """The DATA command; 354 means the body may follow."""
        return self._call(lambda: self._reply(self._smtp.docmd("DATA")))

    def send_body(self, parts: Iterable[bytes | memoryview], chunk: int = 1 << 20) -> None:
        """The message, dot-stuffed and ending in CRLF, sent ``chunk`` bytes at a time
        (never a second copy of a large message in memory); no terminating dot."""
        at_line_start, tail = True, b""
        for part in parts:
            view = memoryview(part)
            for offset in range(0, len(view), chunk):
                piece = bytes(view[offset:offset + chunk])
                stuffed = piece.replace(b"\n.", b"\n..")
                if at_line_start and piece.startswith(b"."):
                    stuffed = b"." + stuffed
                at_line_start = piece.endswith(b"\n")
                tail = (tail + piece[-2:])[-2:]
                self._call(lambda s=stuffed: self._smtp.send(s))
        if tail != b"\r\n":
            self._call(lambda: self._smtp.send(b"\r\n"))

    def end_data(self) -> Reply:
        """The terminating dot and the MTA's reply: the message is delivered on 2xx."""
        def finish() -> Reply:
            self._smtp.send(b".\r\n")
            return self._reply(self._smtp.getreply())
        return self._done(self._call(finish))

    def _done(self, reply: Reply) -> Reply:
        self.last_used = time.monotonic()
        if reply.ok:
            self.sent += 1
            self.resets = 0
        return reply

    def rset(self) -> bool:
        self.resets += 1
        try:
            code = self._smtp.rset()[0]
            self.last_used = time.monotonic()
            return code == 250
        except (smtplib.SMTPException, OSError):
            return False

    def close(self) -> None:
        """Send QUIT without waiting for the reply (Exim holds it ~200 ms), then close."""
        sock = self._smtp.sock
        try:
            if sock is not None:
                sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
        self._smtp.close()


class Reinjector:
    """A pool of :class:`Downstream` connections to one MTA port.

    ``max_per_connection``: messages one connection carries before it is closed
    (0: no limit)."""

    def __init__(self, host: str, port: int, *, timeout: float, idle: float, helo: str,
                 max_idle_connections: int = 8, max_per_connection: int = 10) -> None:
        self.host, self.port = host, port
        self.timeout, self.idle, self.helo = timeout, idle, helo
        self.max_per_connection = max_per_connection
        self._pool: list[Downstream] = []
        self._lock = threading.Lock()
        self._max_idle = max_idle_connections

    @classmethod
    def from_config(cls, app: App, key: str = "filter.reinject") -> Reinjector:
        """A pool to the HOST:PORT in configuration key ``key`` (``filter.reinject``,
        ``filter.incoming_reinject``), with ``filter.reinject_timeout``,
        ``filter.reinject_idle`` and ``filter.reinject_max_per_connection``, greeting with
        the App's host name.  Raises :class:`~ie_core.errors.ConfigError` for a bad
        address."""
        config = app.config
        host, port = parse_hostport(config.get(key), key)
        return cls(host, port, timeout=config.get("filter.reinject_timeout"),
                   idle=config.get("filter.reinject_idle"), helo=app.hostname,
                   max_per_connection=config.get("filter.reinject_max_per_connection"))

    def acquire(self) -> Downstream:
        """A connection ready for MAIL FROM: a pooled one that has not idled past
        ``idle``, else a new one (raises :class:`DownstreamError`)."""
        while True:
            with self._lock:
                conn = self._pool.pop() if self._pool else None
            if conn is None:
                return Downstream(self.host, self.port, self.timeout, self.helo)
            if time.monotonic() - conn.last_used < self.idle:
                return conn
            conn.close()

    def open(self, sender: str, options: Sequence[str] = ()) -> tuple[Downstream, Reply]:
        """A connection and the MTA's reply to ``MAIL FROM:<sender>`` on it.  A pooled
        connection found dead is replaced once by a new one.  Raises
        :class:`DownstreamError` (the connection is closed then)."""
        conn = self.acquire()
        fresh = conn.sent == 0 and conn.resets == 0
        try:
            return conn, conn.mail(sender, options)
        except DownstreamError:
            conn.close()
            if fresh:
                raise
        conn = Downstream(self.host, self.port, self.timeout, self.helo)
        try:
            return conn, conn.mail(sender, options)
        except DownstreamError:
            conn.close()
            raise

    def release(self, conn: Downstream, reusable: bool = True) -> None:
        """Give a connection back after a finished transaction (or RSET it first); it is
        closed instead when it is not reusable or has carried ``max_per_connection``."""
        if reusable and conn.resets < MAX_RESETS and not (
                self.max_per_connection and conn.sent >= self.max_per_connection):
            with self._lock:
                if len(self._pool) < self._max_idle:
                    self._pool.append(conn)
                    return
        conn.close()

    def send(self, sender: str, recipients: Sequence[str], message: bytes,
             mail_options: Sequence[str] = (),
             before_final_dot: Callable[[], None] | None = None) -> SendResult:
        """Deliver ``message`` to every recipient, or to none.

        If the MTA refuses any recipient the transaction is reset and nothing is sent;
        the result names the refusals.  ``before_final_dot`` is passed to
        :meth:`Downstream.data` (a caller that records the send before the MTA commits).
        """
        try:
            conn, reply = self.open(sender, mail_options)
        except DownstreamError as err:
            return SendResult(err.reply)
        reusable = False
        try:
            if not reply.ok:
                conn.rset()
                reusable = True
                return SendResult(reply)
            refused = {}
            for rcpt in recipients:
                r = conn.rcpt(rcpt)
                if not r.ok:
                    refused[rcpt] = r
            if refused:
                reusable = conn.rset()
                # a temporary refusal may clear up: report it rather than a permanent one
                first = sorted(refused.values(), key=lambda r: r.permanent)[0]
                return SendResult(first, refused)
            reply = conn.data(message, before_final_dot)
            reusable = reply.ok
            return SendResult(reply)
        except DownstreamError as err:
            return SendResult(err.reply)
        finally:
            self.release(conn, reusable)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()
