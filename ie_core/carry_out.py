"""A message's life after DATA, and the one place where a verdict becomes an action.

:func:`process` is what the SMTP listener calls for each message: an MTA's retry of a
message already done is answered from the log (:func:`ie_core.processor.look_up`),
anything else is analysed (the phases, :mod:`ie_core.pipeline`), carried out
(:func:`carry_out`), logged and observed (:func:`ie_core.processor.record`).

The reply rule holds in :func:`carry_out`: ``250`` only when the downstream accepted the
message for every recipient or the quarantine holds it durably; a hold that fails is a
``451``, and so is anything that raises on the way.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from ie_core import metrics, processor, replies
from ie_core.app import App
from ie_core.message import MessageContext, SenderIdentity
from ie_core.replies import Reply
from ie_core.smtp import delivery
from ie_core.smtp.reinject import Reinjector
from ie_core.verdict import Action, Direction, Outcome, Result, Verdict

log = logging.getLogger("ie.filter")


def process(app: App, ctx: MessageContext, reinjector: Reinjector) -> Reply:
    """Everything between the end of DATA and the reply; never raises."""
    started = time.monotonic()
    try:
        duplicate, refreshed = processor.look_up(app, ctx)
        if duplicate is not None:
            return duplicate
        verdict = processor.analyse(app, ctx, refreshed=refreshed)
        reply, outcome = carry_out(app, ctx, verdict, reinjector)
    except Exception as err:
        log.exception("event=process_error msgid=%s error=%s", ctx.id, type(err).__name__)
        verdict = Verdict(Action.TEMPFAIL, list(ctx.findings),
                          error=f"processing failed: {type(err).__name__}")
        reply, outcome = replies.INTERNAL_ERROR, Outcome(Result.TEMPFAILED)
    processor.record(app, ctx, verdict, outcome, started)
    return reply


def carry_out(app: App, ctx: MessageContext, verdict: Verdict,
              reinjector: Reinjector) -> tuple[Reply, Outcome]:
    """Do what ``verdict`` says with the message: the reply for the MTA, and what was done."""
    action = verdict.action
    if action in (Action.DELIVER, Action.JUNK) and ctx.held_groups():
        return _deliver_and_hold(app, ctx, verdict, reinjector)
    if action in (Action.DELIVER, Action.JUNK):
        reply = _deliver(reinjector, ctx, processor.delivery_parts(ctx, verdict))
        if reply.ok:
            return reply, Outcome(Result.DELIVERED)
        if reply.permanent:
            return reply, Outcome(Result.REJECTED_DOWNSTREAM)
        return reply, Outcome(Result.TEMPFAILED_DOWNSTREAM)
    if action is Action.QUARANTINE:
        try:
            held_id = processor.hold(app, _held_copy(ctx), verdict)
        except Exception as err:
            log.error("event=hold_failed msgid=%s error=%s: %s", ctx.id,
                      type(err).__name__, err)
            return replies.HOLD_FAILED, Outcome(Result.TEMPFAILED)
        return replies.held(held_id), Outcome.held(held_id)
    if action is Action.REJECT:
        return verdict.smtp_reply or replies.REJECT, Outcome(Result.REJECTED)
    return verdict.smtp_reply or replies.TEMPFAIL, Outcome(Result.TEMPFAILED)


def _held_copy(ctx: MessageContext) -> MessageContext:
    """What a QUARANTINE verdict holds: outgoing mail in its sender's account; incoming
    mail in the server's (root's) quarantine, since the account an outside sender's
    address maps to is the sender's choice (it must not fill, or evict from, a hosted
    account's quarantine).  Incoming holds per recipient account are delivery groups
    (:func:`_deliver_and_hold`)."""
    if ctx.direction is Direction.OUTGOING:
        return ctx
    return dataclasses.replace(ctx, identity=SenderIdentity(account="root"))


def _deliver_and_hold(app: App, ctx: MessageContext, verdict: Verdict,
                      reinjector: Reinjector) -> tuple[Reply, Outcome]:
    """Deliver the groups to deliver, then hold each group a stage set aside for an
    account's quarantine (:attr:`~ie_core.message.DeliveryGroup.hold_for`, the incoming
    quarantine), each copy charged to its own account and naming its own recipients.

    Delivery goes first: when it fails nothing is held and the MTA gets the downstream's
    reply.  A hold that fails after the others were delivered is a ``451``: the MTA's retry
    gives the delivered recipients a second copy (never a loss).
    """
    delivered = bool(ctx.delivery_groups())
    if delivered:
        reply = _deliver(reinjector, ctx, processor.delivery_parts(ctx, verdict))
        if not reply.ok:
            return reply, Outcome(Result.REJECTED_DOWNSTREAM if reply.permanent
                                  else Result.TEMPFAILED_DOWNSTREAM)
    held_ids = []
    try:
        for group in ctx.held_groups():
            # the copy is the held-for account's; nothing of the sender's identity (its
            # script headers came from outside) is recorded with it
            copy = dataclasses.replace(
                ctx, rcpt_tos=list(group.rcpt_tos), groups=[],
                identity=SenderIdentity(account=group.hold_for or "root"))
            held_ids.append(processor.hold(app, copy, verdict))
    except Exception as err:
        log.error("event=hold_failed msgid=%s delivered=%s held=%s error=%s: %s", ctx.id,
                  delivered, ",".join(held_ids) or "-", type(err).__name__, err)
        return replies.HOLD_FAILED, Outcome(Result.TEMPFAILED)
    if delivered:
        return reply, Outcome(Result.DELIVERED)
    return replies.held(",".join(held_ids)), Outcome.held(held_ids[0])


def _deliver(reinjector: Reinjector, ctx: MessageContext,
             message: tuple[bytes, memoryview]) -> Reply:
    """Deliver downstream, counting the reply's class (or why none came) and the time
    it took."""
    started = time.monotonic()
    reply = delivery.deliver(reinjector, ctx, *message)
    figures, direction = metrics.get(), ctx.direction.value
    failure = replies.NO_ANSWER.get(reply)
    if failure is None:
        figures.reinjection.labels(direction, f"{reply.code // 100}xx").inc()
    else:
        figures.reinjection_errors.labels(direction, failure).inc()
    figures.reinjection_latency.labels(direction).observe(time.monotonic() - started)
    return reply

