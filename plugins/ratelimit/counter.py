"""Check-and-count: one transaction that cannot admit more than the limit.

The transaction locks the message's object rows (in id order), sums the last 60
minutes of their ``sent`` rows, decides, and inserts the new rows before it commits, so
a second checker (another thread, worker process or node) that wants the same objects
waits for the lock and then sees this message in its sum.  On SQLite the transaction
begins ``IMMEDIATE`` and holds the database's write lock instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.orm import Session

from ie_core import App, metrics
from ie_core.events import emit

from .limits import MODE_MESSAGES, ServerSettings, effective_limit, is_whitelisted, server_settings
from .models import QUARANTINED, SENT, SenderObject, SendRecord
from .objects import ObjectKey, lock

log = logging.getLogger("ie.ratelimit")

WINDOW = timedelta(minutes=60)
LIMIT_EXCEEDED = "limit_exceeded"
"""The outbox event when a sender object first goes over its limit in a window; payload:
object_id, so_type, name, account, limit, used, limit_mode."""


@dataclass(frozen=True)
class Usage:
    messages: int = 0
    recipients: int = 0

    def used(self, mode: int) -> int:
        return self.messages if mode == MODE_MESSAGES else self.recipients


@dataclass(frozen=True)
class Over:
    """An object this message would take over its limit."""

    object_id: str | None
    so_type: str
    name: str
    limit: int
    used: int

    def describe(self) -> str:
        return f"{self.so_type} {self.name} has used {self.used} of {self.limit} per hour"


def distinct_recipients(rcpt_tos: Iterable[str]) -> int:
    return len({r.strip().strip("<>").lower() for r in rcpt_tos})


def window_usage(s: Session, ids: Iterable[str], now: datetime) -> dict[str, Usage]:
    """Counted ``sent`` messages and recipients per object in the 60 minutes before
    ``now`` (a send at ``t`` stops counting at ``t + 60 min``)."""
    ids = list(ids)
    if not ids:
        return {}
    rows = s.execute(
        select(SendRecord.object_id, func.count(), func.coalesce(func.sum(
            SendRecord.recipients), 0))
        .where(SendRecord.object_id.in_(ids), SendRecord.outcome == SENT,
               SendRecord.counted.is_(True), SendRecord.at > now - WINDOW)
        .group_by(SendRecord.object_id)).all()
    return {oid: Usage(int(n), int(r)) for oid, n, r in rows}


def over_limits(settings: ServerSettings, objects: Sequence[tuple[str | None, str, str,
                                                                  int | None]],
                whitelisted: set[tuple[str, str]], usage: Mapping[str, Usage],
                recipients: int) -> list[Over]:
    """Which of ``objects`` (id, type, name, override) this message would take over."""
    need = 1 if settings.limit_mode == MODE_MESSAGES else recipients
    over = []
    for object_id, so_type, name, override in objects:
        limit = effective_limit(settings, so_type, override, (so_type, name) in whitelisted)
        used = usage.get(object_id or "", Usage()).used(settings.limit_mode)
        if limit and used + need > limit:
            over.append(Over(object_id, so_type, name, limit, used))
    return over


def whitelisted_keys(app: App, keys: Iterable[ObjectKey]) -> set[tuple[str, str]]:
    """Asked before the counting transaction opens (the lookup uses its own session)."""
    return {(k.so_type, k.name) for k in keys if is_whitelisted(app, k.so_type, k.name)}


def lock_and_check(s: Session, settings: ServerSettings, object_ids: Iterable[str],
                   whitelisted: set[tuple[str, str]], recipients: int,
                   now: datetime) -> tuple[dict[str, SenderObject], list[Over]]:
    """Lock the objects' rows (until ``s`` ends, see :func:`.objects.lock`) and return
    them with the objects one more message would take over their limit."""
    rows = lock(s, list(object_ids))
    limited = [r.id for r in rows.values()  # an unlimited object's window is never summed
               if effective_limit(settings, r.so_type, r.limit_override,
                                  (r.so_type, r.name) in whitelisted)]
    usage = window_usage(s, limited, now)
    over = over_limits(settings, [(r.id, r.so_type, r.name, r.limit_override)
                                  for r in rows.values()], whitelisted, usage, recipients)
    return rows, over


def admit(app: App, message_id: str, ids: dict[ObjectKey, str], recipients: int,
          account: str) -> list[Over]:
    """Count the message as ``sent`` if every object has room, else as ``quarantined``
    (emitting ``limit_exceeded`` for objects that were not already over).  Returns the
    objects over their limit (empty: admitted)."""
    settings = server_settings(app)
    whitelisted = whitelisted_keys(app, ids)
    now = app.clock.now()
    emitted = False
    with app.db.session() as s:
        rows, over = lock_and_check(s, settings, ids.values(), whitelisted, recipients, now)
        outcome = QUARANTINED if over else SENT
        add_records(s, message_id, rows, now, outcome, recipients, counted=True)
        for item in over:
            row = rows[item.object_id or ""]
            if row.limited_at is None or row.limited_at <= now - WINDOW:
                emit(s, app.clock, LIMIT_EXCEEDED, account, {
                    "object_id": row.id, "so_type": row.so_type, "name": row.name,
                    "account": account, "limit": item.limit, "used": item.used,
                    "limit_mode": settings.limit_mode})
                emitted = True
            row.limited_at = now
        if not over:
            for row in rows.values():
                row.limited_at = None
    if emitted:
        app.publisher.wake()
    hits = metrics.counter("ie_send_limit_hits", "Messages held over a send limit, by the "
                           "type of the sender object over it", ("so_type",))
    for item in over:
        hits.labels(item.so_type).inc()
    return over


def dry_check(app: App, keys: list[ObjectKey], ids: dict[ObjectKey, str],
              recipients: int) -> list[Over]:
    """What :func:`admit` would decide, without locking or writing anything."""
    settings = server_settings(app)
    whitelisted = whitelisted_keys(app, keys)
    with app.db.session() as s:
        rows = {r.id: r for r in s.scalars(select(SenderObject).where(
            SenderObject.id.in_(list(ids.values()))))}
        usage = window_usage(s, rows, app.clock.now())
    objects = []
    for key in keys:
        row = rows.get(ids.get(key, ""))
        objects.append((row.id if row else None, key.so_type, key.name,
                        row.limit_override if row else None))
    return over_limits(settings, objects, whitelisted, usage, recipients)


def add_records(s: Session, message_id: str, object_ids: Iterable[str], at: datetime,
                outcome: str, recipients: int, counted: bool) -> None:
    for object_id in object_ids:
        s.add(SendRecord(object_id=object_id, message_id=message_id, at=at, outcome=outcome,
                         recipients=recipients, counted=counted))


def record(app: App, message_id: str, object_ids: Iterable[str], outcome: str,
           recipients: int, counted: bool = True) -> None:
    """Record without checking: mail held for other reasons, whitelisted mail.

    The object rows are locked first, in id order, exactly as :func:`admit` locks them:
    inserting a send row takes a key-share lock on its object (the foreign key), and key
    shares taken in insertion order would cross another transaction's ``FOR UPDATE`` in
    id order (a deadlock PostgreSQL breaks after a second, with a 451)."""
    ids = list(object_ids)
    with app.db.session() as s:
        lock(s, ids)
        add_records(s, message_id, ids, app.clock.now(), outcome, recipients, counted)


def forget(app: App, message_id: str, outcome: str | None = None) -> None:
    """Take back what was counted for a message that did not leave (the MTA retries it,
    and a retry must not be counted twice)."""
    cond = [SendRecord.message_id == message_id]
    if outcome is not None:
        cond.append(SendRecord.outcome == outcome)
    with app.db.session() as s:
        s.execute(delete(SendRecord).where(and_(*cond)))


def relabel(app: App, message_id: str, outcome: str) -> None:
    with app.db.session() as s:
        s.execute(update(SendRecord).where(SendRecord.message_id == message_id)
                  .values(outcome=outcome))
