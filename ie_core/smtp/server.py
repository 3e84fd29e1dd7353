"""The filter listeners: aiosmtpd sessions that follow the reply rule.

Recipients are mirrored: on the first RCPT we open a reinjection transaction and pass
each RCPT on, answering the MTA with the reinjection MTA's own reply.  A recipient the
downstream refuses (4xx or 5xx) is refused to the MTA the same way, so it defers or
bounces exactly that recipient, and after DATA one reply covers every accepted
recipient.  The message is answered 250 only after the downstream accepted DATA or the
quarantine holds it durably; every failure is a 451 so the MTA keeps the message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, Envelope, Session

from ie_core import processor
from ie_core.app import App
from ie_core.identity import queue_id
from ie_core.message import MessageContext
from ie_core.pipeline import TEMPFAIL_REPLY
from ie_core.smtp.reinject import Downstream, DownstreamError, Reinjector, Reply
from ie_core.verdict import Action, Direction, Verdict

log = logging.getLogger("ie.smtp")
T = TypeVar("T")

INTERNAL_ERROR = "451 4.3.0 Internal filter error, try again later"
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
# aiosmtpd's own replies that must not reach an MTA as they are.
_REWRITE = {
    "552 Error: Too much mail data": TOO_BIG,
    "552 Error: message size exceeds fixed maximum message size": TOO_BIG,
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long",
}


class SessionDownstream:
    """The reinjection connection of one client session, tied to the session's life.

    A worker thread takes the connection out while it uses it (RCPT, DATA) and puts it
    back after, so no two threads ever share it.  Once the client is gone (:meth:`close`),
    a connection put back late (a RCPT still running in a worker thread when the MTA
    dropped the session) is refused, and its holder closes it: it is never reused with
    the envelope still open.
    """

    def __init__(self) -> None:
        self._conn: Downstream | None = None
        self._closed = False
        self._lock = threading.Lock()

    def take(self) -> Downstream | None:
        with self._lock:
            conn, self._conn = self._conn, None
            return conn

    def put(self, conn: Downstream) -> bool:
        """Keep ``conn`` for the session's next command; False once the session ended."""
        with self._lock:
            if self._closed:
                return False
            self._conn = conn
            return True

    def close(self) -> Downstream | None:
        """The session ended: the connection kept now, if any; none is accepted after."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            return conn


class FilterSession(Session):
    """aiosmtpd's session plus the reinjection connection mirroring its envelope."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.downstream = SessionDownstream()


class FilterSMTP(SMTP):
    """aiosmtpd's SMTP with enhanced status codes and cleanup when a client vanishes."""

    line_length_limit = 1 << 20  # be lenient with long header lines; RFC limit is 1000

    def _create_session(self) -> Session:
        return FilterSession(self.loop)

    async def push(self, status: str) -> None:  # type: ignore[override]
        if status.startswith("500 Error: (") or status.startswith("500 Error: Cannot"):
            status = INTERNAL_ERROR  # an exception escaped a hook: never a permanent error
        await super().push(_REWRITE.get(status, status))

    def connection_lost(self, error: Exception | None) -> None:
        handler = self.event_handler
        if isinstance(handler, FilterHandler) and self.session is not None:
            handler.session_ended(self.session)
        super().connection_lost(error)


class FilterHandler:
    """aiosmtpd handler for one listener (one direction); its sessions are
    :class:`FilterSession` (made by :class:`FilterSMTP`)."""

    def __init__(self, app: App, direction: Direction, reinjector: Reinjector,
                 executor: ThreadPoolExecutor) -> None:
        self.app = app
        self.direction = direction
        self.reinjector = reinjector
        self.executor = executor
        self.in_flight = 0

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # -- session state -------------------------------------------------------------
    def drop_downstream(self, session: Session) -> None:
        """The envelope is abandoned (MAIL, RSET, QUIT): RSET the connection, pool it."""
        conn = _downstream(session).take()
        if conn is not None:
            self._let_go(conn, reuse=True)

    def session_ended(self, session: Session) -> None:
        """The client is gone: close the session's connection, now and if one comes late."""
        conn = _downstream(session).close()
        if conn is not None:
            self._let_go(conn, reuse=False)

    def _let_go(self, conn: Downstream, reuse: bool) -> None:
        """In a worker thread (it blocks): RSET ``conn`` and pool it, or close it."""
        try:
            if reuse:
                self.executor.submit(self._finish, conn, False)
            else:
                self.executor.submit(conn.close)
        except RuntimeError:  # shutting down: no more worker threads
            conn.close()

    def _finish(self, conn: Downstream, transaction_done: bool) -> None:
        """Give ``conn`` back to the pool: as it is after a completed transaction (the
        downstream accepted DATA), else after an RSET (closed if the RSET fails)."""
        self.reinjector.release(conn, transaction_done or conn.rset())

    # -- hooks ---------------------------------------------------------------------
    async def handle_exception(self, error: Exception) -> str:
        log.error("event=smtp_exception error=%s", type(error).__name__, exc_info=error)
        return INTERNAL_ERROR

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        self.drop_downstream(session)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        try:
            reply = await self._run(self._mirror_rcpt, _downstream(session), envelope,
                                    address, list(rcpt_options))
        except DownstreamError as err:
            return str(err.reply) if err.reply.code >= 400 else INTERNAL_ERROR
        if reply.ok:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return str(reply)

    def _mirror_rcpt(self, downstream: SessionDownstream, envelope: Envelope, address: str,
                     options: list[str]) -> Reply:
        """Pass RCPT on, opening the downstream transaction on the first one."""
        conn = downstream.take()
        if conn is None:
            conn = self.reinjector.acquire()
            try:
                reply = conn.mail(envelope.mail_from or "", _mail_options(envelope))
            except DownstreamError:
                conn.close()
                raise
            if not reply.ok:
                self._finish(conn, False)
                return reply
        try:
            reply = conn.rcpt(address, options)
        except DownstreamError:
            conn.close()
            raise
        if not downstream.put(conn):  # the client left while we waited for the reply
            conn.close()
        return reply

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.drop_downstream(session)
        return "250 2.0.0 Ok"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.drop_downstream(session)
        return "221 2.0.0 Bye"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.in_flight += 1
        try:
            conn = _downstream(session).take()
            return await self._run(self._process, session, envelope, conn)
        except Exception as err:  # the executor itself failed; nothing was sent
            log.error("event=data_error error=%s", type(err).__name__, exc_info=err)
            return INTERNAL_ERROR
        finally:
            self.in_flight -= 1

    # -- the message ---------------------------------------------------------------
    def _process(self, session: Session, envelope: Envelope, conn: Downstream | None) -> str:
        started = time.monotonic()
        raw = envelope.original_content or b""
        ctx = MessageContext(
            direction=self.direction, raw=raw, mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos), received_at=self.app.clock.now(),
            peer=str(session.peer[0]) if session.peer else None)
        delivered = False
        try:
            try:
                ctx.queue_id = queue_id(ctx)
            except Exception:
                ctx.queue_id = None
            verdict = processor.analyse(self.app, ctx)
            reply, outcome, delivered = self._act(ctx, verdict, conn)
        except Exception as err:
            log.exception("event=process_error msgid=%s error=%s", ctx.id, type(err).__name__)
            verdict = Verdict(Action.TEMPFAIL, list(ctx.findings),
                              error=f"processing failed: {type(err).__name__}")
            reply, outcome = INTERNAL_ERROR, "tempfailed"
        finally:
            if conn is not None:
                self._finish(conn, delivered)
        processor.record(self.app, ctx, verdict, outcome, started)
        return reply

    def _act(self, ctx: MessageContext, verdict: Verdict,
             conn: Downstream | None) -> tuple[str, str, bool]:
        """(SMTP reply, outcome for the log, whether the downstream accepted DATA)."""
        action = verdict.action
        if action in (Action.DELIVER, Action.JUNK):
            if conn is None:
                return INTERNAL_ERROR, "tempfailed", False
            try:
                reply = conn.data(processor.delivery_bytes(ctx, verdict))
            except DownstreamError as err:
                return str(err.reply), "tempfailed_downstream", False
            if reply.ok:
                return f"250 2.0.0 Ok: delivered as {ctx.id}", "delivered", True
            if reply.permanent:
                return str(reply), "rejected_downstream", False
            return str(reply), "tempfailed_downstream", False
        if action is Action.QUARANTINE:
            try:
                held = processor.hold(self.app, ctx, verdict)
            except Exception as err:
                log.error("event=hold_failed msgid=%s error=%s: %s", ctx.id,
                          type(err).__name__, err)
                return "451 4.3.0 Cannot hold message safely, try again later", \
                    "tempfailed", False
            return f"250 2.0.0 Ok: held as {held}", f"held:{held}", False
        if action is Action.REJECT:
            return verdict.smtp_reply or "550 5.7.1 Message refused", "rejected", False
        return verdict.smtp_reply or TEMPFAIL_REPLY, "tempfailed", False


def _downstream(session: Session) -> SessionDownstream:
    if not isinstance(session, FilterSession):
        raise TypeError("FilterHandler serves FilterSMTP sessions only")
    return session.downstream


def _mail_options(envelope: Envelope) -> list[str]:
    return [o for o in envelope.mail_options
            if o.upper() == "SMTPUTF8" or o.upper().startswith("BODY=")]
