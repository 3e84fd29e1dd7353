"""Delivering a judged message downstream: one transaction per recipient group.

Every group (:meth:`MessageContext.delivery_groups`) gets its own transaction, so a copy
carries only its own group's headers.  The transactions advance together, so that a
failure is found before anything is committed wherever possible:

1. MAIL and every RCPT of every group.  A recipient refused now (it was accepted when the
   MTA's RCPT was checked) fails the whole message with 451: nothing was delivered, and
   on the retry that recipient is refused at RCPT on its own.
2. DATA (354) for every group, then each group's body, without the final dot.
3. The final dots, one group after the other: the downstream's commit points.

Only step 3 can leave a message half delivered: an earlier group accepted, a later one
refused.  The reply is then the refusing group's own (4xx: the MTA retries the whole
message and the groups that had it get it twice; 5xx: the sender gets a bounce although
some recipients got the message).  Both are logged as ``event=partial_delivery``; both
need the reinjection MTA to fail between two final dots sent back to back.

Everything here blocks and runs in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ie_core import rawheaders
from ie_core.message import DeliveryGroup, MessageContext
from ie_core.smtp.reinject import Downstream, DownstreamError, Reinjector, Reply

log = logging.getLogger("ie.smtp")

CHANGED = Reply(451, "4.3.0 Reinjection MTA refused a recipient it had accepted, "
                     "try again later")


@dataclass
class _Transaction:
    group: DeliveryGroup
    conn: Downstream
    state: str = "envelope"  # envelope -> data -> done


def deliver(reinjector: Reinjector, ctx: MessageContext, message: bytes,
            mail_options: Sequence[str], rcpt_options: Mapping[str, Sequence[str]]
            ) -> Reply:
    """Deliver ``message`` (the whole message as it leaves, our headers included) to
    every delivery group of ``ctx``, each with its group's headers on top; the reply for
    the MTA (2xx only when every group was accepted)."""
    groups = ctx.delivery_groups()
    opened: list[_Transaction] = []
    try:
        for group in groups:
            conn, reply = reinjector.open(ctx.mail_from, mail_options)
            opened.append(_Transaction(group, conn))
            if not reply.ok:
                return reply
            for rcpt in group.rcpt_tos:
                reply = conn.rcpt(rcpt, rcpt_options.get(rcpt, ()))
                if not reply.ok:
                    log.warning("event=recipient_refused_at_delivery msgid=%s reply=%s",
                                ctx.id, reply)
                    return reply if not reply.permanent else CHANGED
        for t in opened:
            reply = t.conn.begin_data()
            if reply.code != 354:
                return reply
            t.state = "data"
        end = rawheaders.header_end(message)
        body = memoryview(message)[end:]
        for t in opened:
            head = rawheaders.prepend(message[:end], t.group.headers)
            t.conn.send_body([head, body])
        return _commit(ctx, opened)
    except DownstreamError as err:
        for t in opened:
            if t.state != "done":
                t.conn.close()
                t.state = "closed"
        delivered = sum(t.state == "done" for t in opened)
        if delivered:
            log.error("event=partial_delivery msgid=%s delivered_groups=%d reply=%s",
                      ctx.id, delivered, err.reply)
        return err.reply
    finally:
        for t in opened:
            _release(reinjector, t)


def _commit(ctx: MessageContext, opened: list[_Transaction]) -> Reply:
    failed: list[Reply] = []
    delivered = 0
    for t in opened:
        reply = t.conn.end_data()
        t.state = "done"
        if reply.ok:
            delivered += 1
        else:
            failed.append(reply)
    if not failed:
        return Reply(250, f"2.0.0 Ok: delivered as {ctx.id}")
    reply = sorted(failed, key=lambda r: r.permanent)[0]  # a 4xx may clear up: prefer it
    if delivered:
        log.error("event=partial_delivery msgid=%s delivered_groups=%d failed_groups=%d "
                  "reply=%s (a retry delivers the accepted groups twice)", ctx.id,
                  delivered, len(failed), reply)
    return reply


def _release(reinjector: Reinjector, t: _Transaction) -> None:
    if t.state == "closed":
        return
    if t.state == "data":  # mid-DATA: only closing without the dot abandons it
        t.conn.close()
        return
    # after a reply to the final dot the transaction is over; a refused one needs no RSET
    reinjector.release(t.conn, t.state == "done" or t.conn.rset())
