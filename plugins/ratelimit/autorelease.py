"""Optional auto-release: re-send mail held only for ``ratelimit`` once its objects'
windows have room, oldest first, counting each release like a new send.

A release is claimed and counted in one transaction (object rows locked and checked by
:func:`counter.lock_and_check`, as for a new send; the held row moved to ``releasing``),
then handed to the quarantine through ``ie_release``; if that fails the count is taken
back.  A claim left behind by a crashed process expires after :data:`CLAIM_TIMEOUT`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select

from ie_core import App, NotFound
from ie_core.runtime import RuntimeSetting, current

from .counter import (
    WINDOW,
    add_records,
    count_sent,
    forget,
    lock_and_check,
    whitelisted_keys,
)
from .limits import server_settings
from .models import RELEASING, SENT, WAITING, RateHeld, SenderObject, SendRecord
from .objects import ObjectKey, save

log = logging.getLogger("ie.ratelimit")

AUTO_RELEASE = RuntimeSetting(
    "ratelimit.auto_release", bool, False,
    "Re-send mail held only for the send limit once the sender's window has room again.")
ACTOR = "auto-release"
CLAIM_TIMEOUT = timedelta(minutes=10)
RETRY_AFTER = timedelta(minutes=5)
MAX_ATTEMPTS = 12  # then it stays held for an admin (deleted, or the MTA keeps refusing)


def release_due(app: App, batch: int = 200) -> int:
    """One pass: release what fits, oldest first.  Returns how many were released."""
    now = app.clock.now()
    with app.db.session() as s:
        due = s.scalars(select(RateHeld).where(or_(
            and_(RateHeld.state == WAITING,
                 or_(RateHeld.next_try_at.is_(None), RateHeld.next_try_at <= now)),
            and_(RateHeld.state == RELEASING, RateHeld.claimed_at <= now - CLAIM_TIMEOUT)))
            .order_by(RateHeld.held_at, RateHeld.held_id).limit(batch)).all()
    released = 0
    blocked: set[str] = set()  # objects whose older mail is still waiting: keep the order
    for held in due:
        if blocked & set(held.object_ids):
            continue
        if not _claim(app, held.held_id):
            blocked.update(held.object_ids)
            continue
        outcome = _release(app, held.held_id)
        if outcome is None:
            break
        released += outcome
    return released


def _claim(app: App, held_id: str) -> bool:
    """Count the release and mark the row ``releasing``, if every object has room."""
    settings = server_settings(app)
    with app.db.session() as s:
        held = s.get(RateHeld, held_id)
        if held is None:
            return False
        names = s.execute(select(SenderObject.so_type, SenderObject.name)
                          .where(SenderObject.id.in_(held.object_ids))).all()
    whitelisted = whitelisted_keys(app, [ObjectKey(t, n) for t, n in names])
    with app.db.session() as s:
        rows, over, now = lock_and_check(s, settings, held.object_ids, whitelisted,
                                         held.recipients, app.clock)
        held = s.scalars(select(RateHeld).where(RateHeld.held_id == held_id)
                         .with_for_update().execution_options(populate_existing=True)
                         ).one_or_none()
        if held is None or not _claimable(held, now) or over:
            return False
        add_records(s, held_id, rows, now, SENT, held.recipients, counted=True)
        count_sent(rows.values(), held.recipients)
        save(s, rows.values())
        held.state = RELEASING
        held.claimed_at = now
    return True


def _claimable(held: RateHeld, now: datetime) -> bool:
    if held.state == WAITING:
        return held.next_try_at is None or held.next_try_at <= now
    return held.claimed_at is not None and held.claimed_at <= now - CLAIM_TIMEOUT


def _release(app: App, held_id: str) -> int | None:
    """1 released, 0 still held (retried later), ``None``: no plugin holds mail."""
    try:
        result = app.hooks.release(app, held_id, actor=ACTOR)
    except NotFound:
        _drop(app, held_id)
        log.info("event=auto_release_gone id=%s", held_id)
        return 0
    except Exception as err:
        log.error("event=auto_release_failed id=%s error=%s: %s", held_id,
                  type(err).__name__, err)
        result = False
    if result:
        with app.db.session() as s:
            s.execute(delete(RateHeld).where(RateHeld.held_id == held_id))
        log.info("event=auto_released id=%s", held_id)
        return 1
    forget(app, held_id, SENT)
    with app.db.session() as s:
        held = s.get(RateHeld, held_id)
        if held is not None:
            held.attempts += 1
            held.state = WAITING
            held.next_try_at = app.clock.now() + RETRY_AFTER
            if held.attempts >= MAX_ATTEMPTS:
                log.warning("event=auto_release_given_up id=%s attempts=%d", held_id,
                            held.attempts)
                s.delete(held)
    return None if result is None else 0


def _drop(app: App, held_id: str) -> None:
    forget(app, held_id, SENT)
    with app.db.session() as s:
        s.execute(delete(RateHeld).where(RateHeld.held_id == held_id))


def prune(app: App, keep: timedelta) -> None:
    """Forget send records and held entries older than ``keep`` (never less than two
    windows: a window counter counted up to an hour ago still takes away the sends that
    left the window since, so those must still be there, see ``counter.refresh``)."""
    cutoff = app.clock.now() - max(keep, 2 * WINDOW)
    with app.db.session() as s:
        s.execute(delete(SendRecord).where(SendRecord.at < cutoff))
        s.execute(delete(RateHeld).where(RateHeld.held_at < cutoff))


class AutoReleaser:
    """One pass of the auto-release service: release what the limits now allow (while
    the setting is on), and forget old records once per window."""

    def __init__(self, app: App, keep: timedelta) -> None:
        self.app = app
        self.keep = keep
        self._last_prune: datetime | None = None

    def step(self) -> None:
        if current(self.app, AUTO_RELEASE):
            release_due(self.app)
        now = self.app.clock.now()
        if self._last_prune is None or now - self._last_prune >= WINDOW:
            prune(self.app, self.keep)
            self._last_prune = now
