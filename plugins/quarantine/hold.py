"""Holding a message: bytes on disk, then row, evictions and events in one transaction
(the shared write transaction of the messages finishing at the same time)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from ie_core import App, MessageContext, Verdict
from ie_core.db import new_id
from ie_core.events import emit

from . import event_kinds
from .limits import ACCOUNTS, defaults, lock_accounts
from .models import EVICTED, HELD, HeldMessage, QuarantineAccount, log_entry
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
    """The held row, the evictions it needs and their events, in the shared write
    transaction of the messages finishing now (``app.db.group``), the account's row
    locked first; the ids of the evicted messages."""
    ident = ctx.identity
    account = ident.account or "root"
    now = app.clock.now()
    reasons = verdict.reasons
    subject = ctx.header("Subject")[:MAX_TEXT]

    def work(s: Session) -> list[tuple[str, int]]:
        own_limit, used = s.execute(select(QuarantineAccount.limit_bytes,
                                           QuarantineAccount.used_bytes)
                                    .where(QuarantineAccount.name == account)).one()
        limit = default_limit if own_limit is None else own_limit
        evicted: list[HeldMessage] = []
        after: tuple[datetime, str] | None = None
        while used + ctx.size > limit:
            page = _oldest(s, account, after)
            if not page:
                break
            for row in page:
                if used + ctx.size <= limit:
                    break
                evicted.append(row)
                used -= row.size
            after = (page[-1].quarantined_at, page[-1].id)
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
        s.flush()  # a failure is this message's, not the batch's commit
        return [(row.id, row.size) for row in evicted]

    app.db.group.register_lock(ACCOUNTS, lambda s, names: lock_accounts(s, app.clock.now(), names))
    evicted = app.db.group.run(work, {ACCOUNTS: [account]})
    for evicted_id, size in evicted:
        log.info("event=evicted id=%s account=%s size=%d", evicted_id, account, size)
    return [evicted_id for evicted_id, _ in evicted]


EVICTION_PAGE = 16
"""Rows read at a time while looking for the oldest messages to evict (one is usually
enough: a full quarantine makes room for a message like the ones it holds)."""


def _oldest(s: Session, account: str, after: tuple[datetime, str] | None
            ) -> list[HeldMessage]:
    """The account's oldest held messages after ``after`` (arrival in the quarantine,
    then id), a page at a time, locked: a row a release claims meanwhile (held ->
    releasing) is waited for and then skipped, never evicted while it is being sent."""
    query = select(HeldMessage).where(HeldMessage.account == account,
                                      HeldMessage.state == HELD)
    if after is not None:
        query = query.where(tuple_(HeldMessage.quarantined_at, HeldMessage.id) > after)
    return list(s.scalars(query.order_by(HeldMessage.quarantined_at, HeldMessage.id)
                          .limit(EVICTION_PAGE).with_for_update()
                          .execution_options(populate_existing=True)))
