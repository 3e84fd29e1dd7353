"""Taking messages out of the quarantine: release (re-inject), delete, purge.

These functions do what they are asked for the ids they are given; who may ask is
decided by :mod:`.service`.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update

from ie_core import App, NotFound, rawheaders
from ie_core.events import emit

from . import event_kinds
from .hold import blob_store
from .limits import lock_account, lock_accounts, releases_in_last_hour
from .models import (
    DELETED,
    HELD,
    INCOMING,
    OUTGOING,
    RELEASED,
    RELEASING,
    HeldMessage,
    log_entry,
)
from .reinjectors import Reinjectors

log = logging.getLogger("ie.quarantine")

RELEASE_HEADER = "X-IE-Released"
# A claim older than this is taken to belong to a release that died half-way.
STALE_CLAIM = timedelta(minutes=15)


class ReleaseRefused(Exception):
    """The message stays held; ``str()`` says why (one line)."""


@dataclass(frozen=True)
class ReleaseLimit:
    """A non-root caller's hourly budget for one account."""

    account: str
    per_hour: int


def _forged_incoming(name: str) -> bool:
    return rawheaders.is_ours(name) or name.startswith("x-spam")


def release_header(raw: bytes, actor: str, at: str, held_id: str,
                   direction: str = OUTGOING) -> bytes:
    """The original bytes, less any ``X-IE-*`` header the sender wrote (and, for incoming
    mail, any ``X-Spam*``: a forged ``X-Spam: Yes`` would file the released copy into
    Junk), as normal delivery removes them, with one header on top recording the
    release."""
    safe_actor = "".join(c for c in actor if c.isalnum() or c in "._-@")[:64] or "-"
    forged = _forged_incoming if direction == INCOMING else rawheaders.is_ours
    clean = rawheaders.remove(raw, forged)
    return rawheaders.prepend(clean, [(RELEASE_HEADER,
                                       f"by={safe_actor} at={at} id={held_id}")])


def release(app: App, reinjectors: Reinjectors, held_id: str, actor: str,
            limit: ReleaseLimit | None = None, account: str | None = None) -> None:
    """Send one held message to all its recipients, or leave it held: an outgoing hold
    through the outgoing reinjection, an incoming one (whose recipients are those of one
    account) through the incoming reinjection, to Dovecot.

    The row is claimed first (``held`` -> ``releasing`` in one UPDATE), so two concurrent
    releases send it once.  Raises :class:`ReleaseRefused` when it stays held, and
    :class:`~ie_core.NotFound` when no held message has that id (in ``account``, which
    restricts the id to one account, the caller's).
    """
    row = _claim(app, held_id, limit, account)
    store = blob_store(app)
    try:
        raw = store.read(held_id)
    except OSError as err:
        _unclaim(app, held_id)
        raise ReleaseRefused(f"message file unreadable: {err.strerror or err}") from None
    now = app.clock.now()
    data = release_header(raw, actor, now.isoformat(timespec="seconds"), held_id,
                          row.direction)
    sent = False
    try:
        result = reinjectors.for_direction(row.direction).send(row.mail_from, row.rcpt_tos, data)
        sent = result.ok
    finally:
        if not sent:
            _unclaim(app, held_id)
    if not result.ok:
        detail = "; ".join(f"{r}: {reply}" for r, reply in result.refused.items())
        log.info("event=release_refused id=%s reply=%s", held_id, result.reply)
        raise ReleaseRefused(f"the MTA refused it: {detail or result.reply}")
    with app.db.session() as s:
        lock_accounts(s, now, [row.account])  # before the row: the used bytes change
        done = s.get(HeldMessage, held_id)
        if done is not None:
            s.add(log_entry(done, RELEASED, actor, now, limited=limit is not None))
            emit(s, app.clock, event_kinds.RELEASED, done.account,
                 {"id": held_id, "account": done.account, "actor": actor})
            s.delete(done)
    store.delete([held_id])
    app.publisher.wake()
    log.info("event=released id=%s direction=%s account=%s actor=%s rcpts=%d", held_id,
             row.direction, row.account, actor, len(row.rcpt_tos))
    if "spam" in row.reasons:  # the classifier was wrong: teach it; other holds say nothing
        try:
            app.hooks.learn(app, raw, spam=False)
        except Exception:
            log.exception("event=learn_failed id=%s", held_id)


def _claim(app: App, held_id: str, limit: ReleaseLimit | None,
           account: str | None) -> HeldMessage:
    now = app.clock.now()
    with app.db.session() as s:
        if limit is not None:
            lock_account(s, app, limit.account)
            used = releases_in_last_hour(s, limit.account, now)
            if used >= limit.per_hour:
                raise ReleaseRefused(f"release limit reached: {limit.per_hour} per hour for "
                                     f"account {limit.account}")
        this = [HeldMessage.id == held_id]
        if account is not None:
            this.append(HeldMessage.account == account)
        claimable = or_(HeldMessage.state == HELD,
                        (HeldMessage.state == RELEASING)
                        & (HeldMessage.claimed_at < now - STALE_CLAIM))
        claimed = s.execute(update(HeldMessage).where(*this, claimable).values(
            state=RELEASING, claimed_at=now, claim_limited=limit is not None)
            .execution_options(synchronize_session=False))
        if cast(CursorResult[Any], claimed).rowcount != 1:
            if s.scalar(select(HeldMessage.id).where(*this)) is None:
                raise NotFound(f"no held message with id {held_id}")
            raise ReleaseRefused("it is being released or deleted by someone else")
        row = s.scalars(select(HeldMessage).where(HeldMessage.id == held_id)
                        .execution_options(populate_existing=True)).one()
        s.expunge(row)
        return row


def _unclaim(app: App, held_id: str) -> None:
    with app.db.session() as s:
        s.execute(update(HeldMessage).where(HeldMessage.id == held_id,
                                            HeldMessage.state == RELEASING)
                  .values(state=HELD, claimed_at=None, claim_limited=False)
                  .execution_options(synchronize_session=False))


def delete(app: App, held_ids: list[str], actor: str, spam: bool = False) -> list[str]:
    """Delete held messages (rows first, then files); return the ids deleted.

    Messages being released are skipped.  With ``spam`` the classifiers learn each one
    as spam before its bytes go.
    """
    store = blob_store(app)
    raws: dict[str, bytes] = {}
    if spam:
        for held_id in held_ids:
            with contextlib.suppress(OSError):
                raws[held_id] = store.read(held_id)
    now = app.clock.now()
    done: list[str] = []
    with app.db.session() as s:
        accounts = s.scalars(select(HeldMessage.account).where(HeldMessage.id.in_(held_ids))
                             .distinct()).all()
        if accounts:  # before the rows, as a hold does: their used bytes change
            lock_accounts(s, now, sorted(accounts))
        rows = s.scalars(select(HeldMessage).where(HeldMessage.id.in_(held_ids),
                                                   HeldMessage.state == HELD)
                         .order_by(HeldMessage.quarantined_at, HeldMessage.id)  # as hold.py
                         .with_for_update()).all()
        for row in rows:
            s.add(log_entry(row, DELETED, actor, now))
            emit(s, app.clock, event_kinds.DELETED, row.account,
                 {"id": row.id, "account": row.account, "actor": actor})
            s.delete(row)
            done.append(row.id)
    store.delete(done)
    if done:
        app.publisher.wake()
        log.info("event=deleted ids=%s actor=%s", ",".join(done), actor)
    for held_id in done:
        if held_id in raws:
            try:
                app.hooks.learn(app, raws[held_id], spam=True)
            except Exception:
                log.exception("event=learn_failed id=%s", held_id)
    return done
