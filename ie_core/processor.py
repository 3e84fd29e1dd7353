"""The filter's steps for one message: analyse it, the copy that leaves, hold it, find
an MTA retry of a message already done, log what was done.  :mod:`ie_core.carry_out`
puts them together.

Everything here blocks (SQL, parsing, classifiers) and runs in a worker thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import bindparam, insert, or_, select
from sqlalchemy.engine import Connection

from ie_core import metrics, rawheaders, replies
from ie_core.app import App
from ie_core.db.models import MessageLog
from ie_core.identity import identify
from ie_core.message import MessageContext
from ie_core.pipeline import run_stages
from ie_core.replies import Reply
from ie_core.stages import Stage
from ie_core.verdict import Action, Direction, Outcome, Result, Verdict

log = logging.getLogger("ie.filter")

SCORE_HEADER = "X-IE-Filter-Score"
ACTION_HEADER = "X-IE-Filter-Action"
HITS_HEADER = "X-IE-Filter-Hits"
ID_HEADER = "X-IE-Filter-Id"
_LOG_INSERT = insert(MessageLog)
MAX_EARLIER = 20
"""Earlier log rows of one queue file looked at for a retry (one per transaction the MTA
split it into)."""
_EARLIER = (
    select(MessageLog.id, MessageLog.outcome, MessageLog.mail_from, MessageLog.rcpt_tos)
    .where(MessageLog.queue_id == bindparam("queue_id"),
           MessageLog.digest == bindparam("digest"),
           MessageLog.direction == bindparam("direction"),
           MessageLog.received_at >= bindparam("since"),
           or_(MessageLog.outcome == Result.DELIVERED.value,
               MessageLog.outcome.like(f"{Result.HELD.value}:%")))
    .order_by(MessageLog.received_at.desc()).limit(MAX_EARLIER))


def is_forgeable(direction: Direction, name: str) -> bool:
    """Headers that only we may write: removed from every message before ours are added."""
    if rawheaders.is_ours(name):
        return True
    return direction is Direction.INCOMING and name.startswith("x-spam")


def analyse(app: App, ctx: MessageContext, stages: Sequence[Stage] | None = None,
            refreshed: bool = False) -> Verdict:
    """Identify the sender, run the stages and decide.  Never raises: a failure is a
    TEMPFAIL verdict (logged with where it happened).  ``refreshed``: the caller read
    the change counters for this message already (:func:`look_up`)."""
    try:
        if not refreshed:  # cached whitelists, domain map, settings: current from here
            app.changes.refresh()
        ctx.identity = identify(ctx, app.config.get("identity.auth_header"))
        ctx.identity.account = app.hooks.resolve_account(app, ctx.identity) or "root"
        if stages is None:
            stages = app.stages(ctx.direction)
    except Exception as err:
        log.exception("event=identify_error msgid=%s error=%s", ctx.id, type(err).__name__)
        return Verdict(Action.TEMPFAIL, smtp_reply=replies.TEMPFAIL,
                       error=f"identify failed: {type(err).__name__}")
    verdict = run_stages(ctx, stages)
    if verdict.action is not Action.TEMPFAIL and not ctx.dry_run:
        try:
            app.hooks.message_processed(app, ctx, verdict)
        except Exception as err:
            log.exception("event=observer_error msgid=%s error=%s", ctx.id, type(err).__name__)
            return Verdict(Action.TEMPFAIL, verdict.findings, verdict.score, replies.TEMPFAIL,
                           error=f"ie_message_processed failed: {type(err).__name__}")
    return verdict


def delivery_parts(ctx: MessageContext, verdict: Verdict) -> tuple[bytes, memoryview]:
    """The message as it leaves, as its header block (up to and including the blank
    line) and its body: forged copies of our headers removed, the stages' header changes
    made, ours on top.  Only the header block is rewritten; the body is a view of
    :attr:`~MessageContext.raw`, so a large message is never copied."""
    raw = ctx.raw
    end = rawheaders.header_end(raw)
    blank = 2 if raw[end:end + 2] == b"\r\n" else 1 if raw[end:end + 1] == b"\n" else 0
    clean = ctx.header_changes.apply(
        rawheaders.remove(raw[:end + blank], lambda n: is_forgeable(ctx.direction, n)))
    headers = [
        (ID_HEADER, ctx.id),
        (SCORE_HEADER, f"{verdict.score:.2f}"),
        (ACTION_HEADER, verdict.action.value),
    ]
    if verdict.hits:
        headers.append((HITS_HEADER, ", ".join(verdict.hits)))
    return rawheaders.prepend(clean, headers), memoryview(raw)[end + blank:]


def hold(app: App, ctx: MessageContext, verdict: Verdict) -> str:
    """Hand the message to the quarantine plugin; raises unless it is durably held."""
    held_id = app.hooks.hold(app, ctx, verdict)
    if held_id is None:
        raise RuntimeError("no plugin holds quarantined mail (is the quarantine plugin disabled?)")
    return held_id


def look_up(app: App, ctx: MessageContext) -> tuple[Reply | None, bool]:
    """What a message reads before its analysis, on one connection: the change counters
    (:meth:`~ie_core.changes.ChangeCounters.refresh`) and an earlier log row of the same
    queue file (:func:`duplicate_reply`).  Returns the duplicate's reply (or ``None``) and
    whether the counters were read (when not, :func:`analyse` reads them, and reports a
    failure)."""
    try:
        with app.db.read_connection() as conn:
            app.changes.refresh(conn)
            return duplicate_reply(app, ctx, conn), True
    except Exception as err:
        log.warning("event=lookup_failed msgid=%s error=%s", ctx.id, type(err).__name__)
        return None, False


def duplicate_reply(app: App, ctx: MessageContext, conn: Connection) -> Reply | None:
    """The reply for an MTA retry of a message ie already delivered or held, else ``None``.

    After a crash between the downstream's (or the quarantine's) commit and ie's 250, the
    MTA hands the same queue file over again: same queue id, same bytes, same sender, and
    recipients that row already had.  Its log row says what was done, so the message is
    neither sent nor held a second time.  The recipients matter: an MTA splits a message
    with many recipients into several transactions of the same queue file, and each must
    be delivered.  Without a queue id, or when the log cannot be read, nothing is
    suppressed (the message goes through the pipeline as usual: a duplicate is better
    than a loss).  The lookup only reads (no SQLite write lock).
    """
    window = app.config.get("filter.duplicate_window")
    if not ctx.queue_id or window <= 0:
        return None
    try:
        rows = conn.execute(_EARLIER, {
            "queue_id": ctx.queue_id, "digest": ctx.digest, "direction": ctx.direction.value,
            "since": ctx.received_at - timedelta(seconds=window)}).all()
    except Exception as err:
        log.warning("event=duplicate_check_failed msgid=%s error=%s", ctx.id,
                    type(err).__name__)
        return None
    wanted = set(ctx.rcpt_tos)
    match = next((r for r in rows if r.mail_from == ctx.mail_from[:320]
                  and wanted <= set(r.rcpt_tos)), None)
    if match is None:
        return None
    outcome = Outcome.parse(match.outcome)
    log.info("event=duplicate_suppressed queue_id=%s msgid=%s earlier=%s outcome=%s",
             ctx.queue_id, ctx.id, match.id, outcome)
    if outcome.held_id is not None:
        return replies.held_before(outcome.held_id)
    return replies.delivered_before(match.id)


def record(app: App, ctx: MessageContext, verdict: Verdict, outcome: Outcome,
           started: float) -> None:
    """Write the message-log row and the structured log line; tell the observers.

    The message is already safe (or refused) when this runs, so a failure here is
    logged, never raised.
    """
    seconds = time.monotonic() - started
    ms = int(seconds * 1000)
    ident = ctx.identity
    _count(ctx, verdict, outcome, seconds)
    log.info(
        "event=message queue_id=%s msgid=%s direction=%s from=<%s> rcpts=%d to=%s size=%d "
        "account=%s action=%s outcome=%s reasons=%s score=%.2f ms=%d",
        ctx.queue_id or "-", ctx.id, ctx.direction.value, _safe(ctx.mail_from),
        len(ctx.rcpt_tos), ",".join(_safe(r) for r in ctx.rcpt_tos[:10]), ctx.size,
        ident.account, verdict.action.value, outcome, ",".join(verdict.reasons) or "-",
        verdict.score, ms)
    row = {
        "id": ctx.id, "queue_id": ctx.queue_id, "direction": ctx.direction.value,
        "received_at": ctx.received_at, "mail_from": ctx.mail_from[:320],
        "rcpt_tos": list(ctx.rcpt_tos), "size": ctx.size, "account": ident.account,
        "domain": ident.domain, "sender_email": ident.sender_email, "script": ident.script,
        "action": verdict.action.value, "outcome": str(outcome), "reasons": verdict.reasons,
        "score": verdict.score, "duration_ms": ms, "digest": ctx.digest}
    try:  # in the shared transaction of the messages finishing now (group commit)
        app.db.group.run(lambda s: s.connection().execute(_LOG_INSERT, row))
    except Exception as err:
        log.error("event=log_write_failed msgid=%s error=%s", ctx.id, err)
    app.hooks.action_taken(app, ctx, verdict, outcome)


def _count(ctx: MessageContext, verdict: Verdict, outcome: Outcome, seconds: float) -> None:
    figures = metrics.get()
    direction = ctx.direction.value
    figures.messages.labels(direction, verdict.action.value, outcome.result.value).inc()
    for reason in verdict.reasons:
        figures.reasons.labels(direction, reason).inc()
    figures.latency.labels(direction).observe(seconds)


def _safe(text: str) -> str:
    return "".join(c if c.isprintable() and c not in " =" else "?" for c in text)[:200]
