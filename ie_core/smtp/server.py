"""The filter listeners: aiosmtpd sessions that follow the reply rule.

Each RCPT is checked with the reinjection MTA before we answer it: a pooled connection
sends MAIL and that RCPT, then RSET, and goes back to the pool.  A recipient the
downstream refuses (4xx or 5xx) is refused to the MTA the same way, so it defers or
bounces exactly that recipient.  No reinjection connection is held while a client idles:
the message is delivered after DATA on connections taken then (one transaction per
recipient group, :mod:`ie_core.smtp.delivery`).  The message is answered 250 only after
the downstream accepted it or the quarantine holds it durably; every failure is a 451 so
the MTA keeps the message.

Limits: ``filter.max_sessions`` sessions per listener (more get ``421 4.3.2``), message
bodies over ``filter.spool_threshold`` are received into a private temporary file in the
data directory (:class:`FilterSMTP`), and at most ``filter.max_large_in_flight`` such
bodies are processed (read into memory) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from aiosmtpd.smtp import SMTP, Envelope, Session

from ie_core import carry_out, metrics, replies
from ie_core.app import App
from ie_core.identity import queue_id
from ie_core.message import MessageContext
from ie_core.replies import Reply
from ie_core.smtp.dataread import Unstuffer, receive
from ie_core.smtp.reinject import DownstreamError, Reinjector
from ie_core.verdict import Direction

log = logging.getLogger("ie.smtp")
T = TypeVar("T")

# aiosmtpd's own replies that must not reach an MTA as they are.
_REWRITE = {
    "552 Error: Too much mail data": str(replies.TOO_BIG),
    "552 Error: message size exceeds fixed maximum message size": str(replies.TOO_BIG),
    "500 Line too long (see RFC5321 4.5.3.1.6)": str(replies.LINE_TOO_LONG),
}
_FLUSH = 256 * 1024  # received body bytes kept before they are written to the spool


@dataclass
class Limits:
    """What one listener lets its clients hold (read at start)."""

    max_sessions: int
    spool_dir: Path
    spool_threshold: int
    large_slots: asyncio.Semaphore  # shared by the listeners of one process

    @classmethod
    def from_config(cls, app: App, large_slots: asyncio.Semaphore) -> Limits:
        spool = app.data_dir / "spool"
        spool.mkdir(mode=0o700, exist_ok=True)
        spool.chmod(0o700)
        return cls(app.config.get("filter.max_sessions"), spool,
                   app.config.get("filter.spool_threshold"), large_slots)


class FilterEnvelope(Envelope):
    """aiosmtpd's envelope plus the received body (instead of ``original_content``) and
    each recipient's RCPT parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.body: IO[bytes] | None = None
        self.body_size = 0
        self.rcpt_params: dict[str, list[str]] = {}


class FilterSession(Session):
    """aiosmtpd's session; ``gone`` once the client disconnected."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.gone = False


class FilterSMTP(SMTP):
    """aiosmtpd's SMTP with enhanced status codes, a session cap, and DATA received in
    bulk (:mod:`.dataread`) into a spool file (in memory up to ``filter.spool_threshold``)
    instead of a list of lines.

    The body is stored exactly as ``original_content`` would hold it: dot-unstuffed,
    line ends as received; the size limit and over-long lines are answered after the
    final dot, as aiosmtpd does.
    """

    line_length_limit = 1 << 20  # be lenient with long header lines; RFC limit is 1000

    def __init__(self, handler: FilterHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.filter = handler
        self._admitted = False

    def _create_session(self) -> Session:
        return FilterSession(self.loop)

    def _create_envelope(self) -> Envelope:
        return FilterEnvelope()

    async def push(self, status: str) -> None:  # type: ignore[override]
        if status.startswith("500 Error: (") or status.startswith("500 Error: Cannot"):
            # an exception escaped a hook: never a permanent error
            status = str(replies.INTERNAL_ERROR)
        await super().push(_REWRITE.get(status, status))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._admitted and self.transport is None:
            self._admitted = self.filter.admit()
        super().connection_made(transport)

    async def _handle_client(self) -> None:
        # aiosmtpd's client loop (which greets first), unless over the session cap
        if self._admitted:
            await super()._handle_client()
            return
        log.warning("event=session_refused reason=max_sessions peer=%s",
                    self.session.peer if self.session else "-")
        await self.push(str(replies.TOO_MANY_SESSIONS))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if isinstance(self.session, FilterSession):
            self.session.gone = True
        if self._admitted:
            self._admitted = False
            self.filter.session_closed()
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        envelope = self.envelope
        assert isinstance(envelope, FilterEnvelope)
        if not envelope.rcpt_tos:
            await self.push(str(replies.NEED_RCPT))
            return
        if arg:
            await self.push(str(replies.DATA_SYNTAX))
            return
        await self.push(str(replies.START_DATA))
        limits = self.filter.limits
        with tempfile.SpooledTemporaryFile(max_size=max(1, limits.spool_threshold),
                                           dir=str(limits.spool_dir)) as body:
            refusal = await self._receive(body)
            if refusal is not None:
                self._set_post_data_state()
                await self.push(refusal)
                return
            envelope.body, envelope.body_size = body, body.tell()
            status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)

    async def _receive(self, body: IO[bytes]) -> str | None:
        """Read DATA up to the lone dot into ``body`` (in bulk, :mod:`.dataread`); a
        refusal for the end, or None."""
        unstuffer = Unstuffer(self.data_size_limit or 0, self.line_length_limit)
        pending = bytearray()

        async def keep(data: bytes) -> None:
            pending.extend(data)
            if len(pending) >= _FLUSH:
                await self._spool(body, pending)

        try:
            await receive(self._reader, unstuffer, keep)
        except asyncio.CancelledError:
            self._writer.close()
            raise
        if unstuffer.too_long:
            return str(replies.LINE_TOO_LONG)
        if unstuffer.too_big:
            return str(replies.TOO_BIG)
        if pending:
            await self._spool(body, pending)
        return None

    async def _spool(self, body: IO[bytes], pending: bytearray) -> None:
        """Append ``pending`` to ``body`` (and empty it); writes that reach the disk run in
        a thread, never on the event loop."""
        data = bytes(pending)
        pending.clear()
        if body.tell() + len(data) <= self.filter.limits.spool_threshold:
            body.write(data)
        else:
            await asyncio.get_running_loop().run_in_executor(None, body.write, data)


class FilterHandler:
    """aiosmtpd handler for one listener (one direction); its sessions are
    :class:`FilterSession` (made by :class:`FilterSMTP`)."""

    def __init__(self, app: App, direction: Direction, reinjector: Reinjector,
                 executor: ThreadPoolExecutor, limits: Limits) -> None:
        self.app = app
        self.direction = direction
        self.reinjector = reinjector
        self.executor = executor
        self.limits = limits
        self.in_flight = 0
        self.sessions = 0

    def admit(self) -> bool:
        """Count a new session; False (not counted) when the listener is full."""
        if self.limits.max_sessions and self.sessions >= self.limits.max_sessions:
            return False
        self.sessions += 1
        metrics.get().sessions.labels(self.direction.value).inc()
        return True

    def session_closed(self) -> None:
        self.sessions -= 1
        metrics.get().sessions.labels(self.direction.value).dec()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # -- hooks ---------------------------------------------------------------------
    async def handle_exception(self, error: Exception) -> str:
        log.error("event=smtp_exception error=%s", type(error).__name__, exc_info=error)
        return str(replies.INTERNAL_ERROR)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if not _address_allowed(address, mail_options):
            return str(replies.NEEDS_SMTPUTF8)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return str(replies.SENDER_OK)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if not _address_allowed(address, envelope.mail_options):
            return str(replies.NEEDS_SMTPUTF8)
        try:
            reply = await self._run(self._check_rcpt, session, envelope, address,
                                    list(rcpt_options))
        except DownstreamError as err:
            failure = replies.NO_ANSWER.get(err.reply)
            if failure is not None:
                metrics.get().reinjection_errors.labels(self.direction.value, failure).inc()
            return str(err.reply) if err.reply.code >= 400 else str(replies.INTERNAL_ERROR)
        if reply.ok:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            if isinstance(envelope, FilterEnvelope):
                envelope.rcpt_params.setdefault(address, list(rcpt_options))
        return str(reply)

    def _check_rcpt(self, session: Session, envelope: Envelope, address: str,
                    options: list[str]) -> Reply:
        """Ask the downstream about one recipient (MAIL, RCPT, RSET) on a pooled
        connection; the connection is closed instead of pooled when the client left."""
        conn, reply = self.reinjector.open(envelope.mail_from or "", _mail_options(envelope))
        try:
            if reply.ok:
                reply = conn.rcpt(address, options)
        except DownstreamError:
            conn.close()
            raise
        gone = isinstance(session, FilterSession) and session.gone
        if gone:
            conn.close()
        else:
            self.reinjector.release(conn, conn.rset())
        return reply

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return str(replies.OK)

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return str(replies.BYE)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not isinstance(envelope, FilterEnvelope) or envelope.body is None:
            return str(replies.INTERNAL_ERROR)
        large = envelope.body_size > self.limits.spool_threshold
        self.in_flight += 1
        try:
            async with self.limits.large_slots if large else contextlib.nullcontext():
                return await self._run(self._process, session, envelope)
        except Exception as err:  # the executor itself failed; nothing was sent
            log.error("event=data_error error=%s", type(err).__name__, exc_info=err)
            return str(replies.INTERNAL_ERROR)
        finally:
            self.in_flight -= 1

    # -- the message ---------------------------------------------------------------
    def _process(self, session: Session, envelope: FilterEnvelope) -> str:
        ctx = MessageContext(
            direction=self.direction, raw=b"", mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos), received_at=self.app.clock.now(),
            peer=str(session.peer[0]) if session.peer else None,
            mail_options=_mail_options(envelope), rcpt_params=dict(envelope.rcpt_params))
        try:
            assert envelope.body is not None
            envelope.body.seek(0)
            ctx.raw = envelope.body.read()
        except Exception as err:
            log.exception("event=process_error msgid=%s error=%s", ctx.id, type(err).__name__)
            return str(replies.INTERNAL_ERROR)
        try:
            ctx.queue_id = queue_id(ctx)
        except Exception:
            ctx.queue_id = None
        return str(carry_out.process(self.app, ctx, self.reinjector))


def _address_allowed(address: str, mail_options: list[str]) -> bool:
    """An address outside ASCII needs an SMTPUTF8 transaction (RFC 6531: 553 5.6.7)."""
    return address.isascii() or any(o.upper() == "SMTPUTF8" for o in mail_options)


def _mail_options(envelope: Envelope) -> list[str]:
    return [o for o in envelope.mail_options
            if o.upper() == "SMTPUTF8" or o.upper().startswith("BODY=")]
