"""Holding a message: bytes on disk, then row, evictions and events in one transaction."""

from __future__ import annotations

import logging

from sqlalchemy import select

from ie_core import App, MessageContext, Verdict
from ie_core.db import new_id
from ie_core.events import emit

from . import event_kinds
from .limits import defaults, lock_account, used_bytes
from .models import EVICTED, HELD, HeldMessage, log_entry
from .store import BlobStore

log = logging.getLogger("ie.quarantine")

MAX_TEXT = 998


def blob_store(app: App) -> BlobStore:
    return BlobStore(app.data_dir / "quarantine")


def hold(app: App, ctx: MessageContext, verdict: Verdict) -> str:
    """Durably hold ``ctx``; return its held id.  Raises on any failure (nothing is held
    then, and the caller answers 451)."""
    default_limit = defaults(app).limit_bytes  # read before our write transaction
    held_id = new_id()
    store = blob_store(app)
    store.write(held_id, ctx.raw)
    try:
        evicted = _commit(app, ctx, verdict, held_id, default_limit)
    except BaseException:
        store.delete([held_id])
        raise
    store.delete(evicted)
    app.publisher.wake()
    log.info("event=held id=%s msgid=%s direction=%s account=%s size=%d reasons=%s "
             "evicted=%d", held_id, ctx.id, ctx.direction.value, ctx.identity.account,
             ctx.size, ",".join(verdict.reasons) or "-", len(evicted))
    return held_id


def _commit(app: App, ctx: MessageContext, verdict: Verdict, held_id: str,
            default_limit: int) -> list[str]:
    ident = ctx.identity
    account = ident.account or "root"
    now = app.clock.now()
    reasons = verdict.reasons
    subject = ctx.header("Subject")[:MAX_TEXT]
    evicted: list[HeldMessage] = []
    with app.db.session() as s:
        settings = lock_account(s, app, account)
        limit = default_limit if settings.limit_bytes is None else settings.limit_bytes
        used = used_bytes(s, account)
        if used + ctx.size > limit:
            # FOR UPDATE: a row a release claims meanwhile (held -> releasing) is waited
            # for and then skipped, never evicted while it is being sent
            oldest = s.scalars(select(HeldMessage).where(
                HeldMessage.account == account, HeldMessage.state == HELD)
                .order_by(HeldMessage.quarantined_at, HeldMessage.id)
                .with_for_update().execution_options(populate_existing=True)).all()
            for row in oldest:
                if used + ctx.size <= limit:
                    break
                evicted.append(row)
                used -= row.size
        for row in evicted:
            s.add(log_entry(row, EVICTED, "ie", now))
            emit(s, app.clock, event_kinds.EVICTED, account, {"id": row.id, "account": account})
            s.delete(row)
        s.add(HeldMessage(
            id=held_id, account=account, direction=ctx.direction.value, state=HELD,
            received_at=ctx.received_at,
            quarantined_at=now, mail_from=ctx.mail_from[:320], rcpt_tos=list(ctx.rcpt_tos),
            header_from=ctx.header("From")[:MAX_TEXT], subject=subject, size=ctx.size,
            reasons=reasons, reasons_key="," + ",".join(reasons) + ",", score=verdict.score,
            script_raw=ident.script, script_domain=ident.script_domain,
            script_path=(ident.script_path or None) and ident.script_path[:1024],
            claimed_at=None, claim_limited=False))
        emit(s, app.clock, event_kinds.HELD, account, {
            "id": held_id, "account": account, "sender": ctx.mail_from,
            "recipients": list(ctx.rcpt_tos), "subject": subject, "reasons": reasons,
            "size": ctx.size, "direction": ctx.direction.value, "score": verdict.score})
    for row in evicted:
        log.info("event=evicted id=%s account=%s size=%d", row.id, account, row.size)
    return [row.id for row in evicted]
