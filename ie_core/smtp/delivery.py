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
from dataclasses import dataclass

from ie_core import rawheaders, replies
from ie_core.message import DeliveryGroup, MessageContext
from ie_core.replies import Reply
from ie_core.smtp.reinject import Downstream, DownstreamError, Reinjector

log = logging.getLogger("ie.smtp")



@dataclass
class _Transaction:
    group: DeliveryGroup
    conn: Downstream
    state: str = "envelope"  # envelope -> data -> done


def deliver(reinjector: Reinjector, ctx: MessageContext, head: bytes,
            body: bytes | memoryview = b"") -> Reply:
    """Deliver the message as it leaves (``head``: its header block with ours, up to and
    including the blank line, or the whole message; ``body``: the rest, sent as it is)
    to every delivery group of ``ctx``, each with its group's headers on top, with the
    envelope's MAIL and RCPT parameters; the reply for the MTA (2xx only when every group
    was accepted)."""
    groups = ctx.delivery_groups()
    opened: list[_Transaction] = []
    try:
        for group in groups:
            conn, reply = reinjector.open(ctx.mail_from, ctx.mail_options)
            opened.append(_Transaction(group, conn))
            if not reply.ok:
                return reply
            for rcpt in group.rcpt_tos:
                reply = conn.rcpt(rcpt, ctx.rcpt_params.get(rcpt, ()))
                if not reply.ok:
                    log.warning("event=recipient_refused_at_delivery msgid=%s reply=%s",
                                ctx.id, reply)
                    return reply if not reply.permanent else replies.CHANGED
        for t in opened:
            reply = t.conn.begin_data()
            if reply.code != 354:
                return reply
            t.state = "data"
        end = rawheaders.header_end(head)
        rest = memoryview(head)[end:]
        for t in opened:
            group_head = rawheaders.prepend(head[:end], t.group.headers)
            t.conn.send_body([group_head, rest, body])
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
        return replies.delivered(ctx.id)
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
