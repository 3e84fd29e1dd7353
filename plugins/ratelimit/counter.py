"""Check-and-count: one transaction that cannot admit more than the limit.

The transaction locks the message's object rows (in id order), brings each row's window
counters up to now (:func:`refresh`: it takes away only the sends that left the window
since the row was last counted, so the cost does not grow with what the sender sent in
the hour), decides, inserts the new send rows and adds them to the counters before it
commits.  A second checker (another thread, worker process or node) that wants the same
objects waits for the lock and then sees this message in the counters.  On SQLite the
transaction begins ``IMMEDIATE`` and holds the database's write lock instead.  Whatever
takes a counted send back (:func:`forget`, :func:`relabel`) locks the rows the same way
and takes it out of the counters while it is still in the window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Table, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from ie_core import App, Clock, metrics
from ie_core.events import emit

from .limits import MODE_MESSAGES, ServerSettings, effective_limit, is_whitelisted, server_settings
from .models import QUARANTINED, SENT, SenderObject, SendRecord
from .objects import ObjectKey, StaleIds, Window, ensure, forget_ids, lock, place, save

log = logging.getLogger("ie.ratelimit")

WINDOW = timedelta(minutes=60)
OBJECTS = "ratelimit_objects"
"""The lock kind of sender-object rows in the shared write transaction."""
T = TypeVar("T")
_SENDS = cast(Table, SendRecord.__table__)
_EXPIRED = (select(func.count(), func.coalesce(func.sum(SendRecord.recipients), 0))
            .where(SendRecord.object_id == bindparam("oid"),
                   SendRecord.at > bindparam("since"), SendRecord.at <= bindparam("until"),
                   SendRecord.outcome == SENT, SendRecord.counted.is_(True)))
"""Counted sends of one object that left the window between two checks."""
_IN_WINDOW = (select(func.count(), func.coalesce(func.sum(SendRecord.recipients), 0),
                     func.min(SendRecord.at))
              .where(SendRecord.object_id == bindparam("oid"),
                     SendRecord.at > bindparam("since"),
                     SendRecord.outcome == SENT, SendRecord.counted.is_(True)))
"""Counted sends of one object in the window, and the oldest of them."""
_OLDEST = (select(SendRecord.at)
           .where(SendRecord.object_id == bindparam("oid"), SendRecord.at > bindparam("since"),
                  SendRecord.outcome == SENT, SendRecord.counted.is_(True))
           .order_by(SendRecord.at).limit(1))
"""The oldest counted send of one object still in the window (a seek in the index)."""
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


def refresh(s: Session, rows: Iterable[Window], now: datetime) -> None:
    """Bring locked rows' counters to the window ending at ``now``.

    A row counted less than an hour ago loses the sends that fell out of the window
    since: none while its oldest counted send is still inside (no query), else those
    of a range of the (object, at) index, and the next oldest is looked up; one counted
    an hour or more ago has nothing left in the window; one never counted (or counted
    "in the future", a clock that went back) is summed once.
    """
    conn = s.connection()
    for row in rows:
        counted_at, oldest = row.window_at, row.window_oldest
        if counted_at is None or counted_at > now:
            n, r, oldest = conn.execute(_IN_WINDOW, {"oid": row.id, "since": now - WINDOW}
                                        ).one()
            row.window_messages, row.window_recipients = int(n), int(r)
            row.window_oldest = oldest or now
        elif counted_at <= now - WINDOW:
            row.window_messages = row.window_recipients = 0
            row.window_oldest = now
        elif oldest is None or oldest <= now - WINDOW:
            n, r = conn.execute(_EXPIRED, {"oid": row.id, "since": counted_at - WINDOW,
                                           "until": now - WINDOW}).one()
            row.window_messages = max(0, row.window_messages - int(n))
            row.window_recipients = max(0, row.window_recipients - int(r))
            oldest = conn.execute(_OLDEST, {"oid": row.id, "since": now - WINDOW}).scalar()
            row.window_oldest = oldest or now
        row.window_at = now


def count_sent(rows: Iterable[Window], recipients: int) -> None:
    """Add one counted send to refreshed rows' counters."""
    for row in rows:
        row.window_messages += 1
        row.window_recipients += recipients


def uncount(rows: Mapping[str, Window], records: Iterable[Any]) -> None:
    """Take counted ``sent`` records (object_id, at, recipients) back out of the locked
    rows' counters, those still inside the window the counters describe."""
    for rec in records:
        row = rows.get(rec.object_id)
        if row is None or row.window_at is None or rec.at <= row.window_at - WINDOW:
            continue
        row.window_messages = max(0, row.window_messages - 1)
        row.window_recipients = max(0, row.window_recipients - rec.recipients)


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
                   clock: Clock) -> tuple[dict[str, Window], list[Over], datetime]:
    """Lock the objects' rows (until ``s`` ends, see :func:`.objects.lock`) and return
    them with the objects one more message would take over their limit, and the time
    of the check: read once the locks are held, so the counters only move forward.
    The caller changes the rows and :func:`~.objects.save` s them."""
    rows = lock(s, list(object_ids))
    now = clock.now()
    refresh(s, rows.values(), now)
    usage = {r.id: Usage(r.window_messages, r.window_recipients) for r in rows.values()}
    over = over_limits(settings, [(r.id, r.so_type, r.name, r.limit_override)
                                  for r in rows.values()], whitelisted, usage, recipients)
    return rows, over, now


def admit(app: App, message_id: str, ids: dict[ObjectKey, str], recipients: int,
          account: str) -> list[Over]:
    """Count the message as ``sent`` if every object has room, else as ``quarantined``
    (emitting ``limit_exceeded`` for objects that were not already over).  Returns the
    objects over their limit (empty: admitted).

    Runs in the process's shared write transaction (:attr:`Database.group`), which has
    locked the objects of every message in it in id order before any runs."""
    settings = server_settings(app)
    whitelisted = whitelisted_keys(app, ids)

    def work(s: Session) -> tuple[list[Over], bool]:
        emitted = False
        rows, over, now = lock_and_check(s, settings, ids.values(), whitelisted, recipients,
                                         app.clock)
        place(rows, ids)
        outcome = QUARANTINED if over else SENT
        add_records(s, message_id, rows, now, outcome, recipients, counted=True)
        if not over:
            count_sent(rows.values(), recipients)
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
        save(s, rows.values())
        return over, emitted

    over, emitted = _shared(app, work, ids.values())
    if emitted:
        app.publisher.wake()
    hits = metrics.counter("ie_send_limit_hits", "Messages held over a send limit, by the "
                           "type of the sender object over it", ("so_type",))
    for item in over:
        hits.labels(item.so_type).inc()
    return over


def _shared(app: App, work: Callable[[Session], T], object_ids: Iterable[str]) -> T:
    """``work`` in the shared write transaction, the objects locked first."""
    app.db.group.register_lock(OBJECTS, lock)
    return app.db.group.run(work, {OBJECTS: list(object_ids)})


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
    s.connection().execute(insert(_SENDS), [
        {"object_id": object_id, "message_id": message_id, "at": at, "outcome": outcome,
         "recipients": recipients, "counted": counted} for object_id in object_ids])


def record(app: App, message_id: str, ids: Mapping[ObjectKey, str], outcome: str,
           recipients: int, counted: bool = True) -> None:
    """Record without checking: mail held for other reasons, whitelisted mail.

    The object rows are locked first, in id order, exactly as :func:`admit` locks them:
    inserting a send row takes a key-share lock on its object (the foreign key), and key
    shares taken in insertion order would cross another transaction's ``FOR UPDATE`` in
    id order (a deadlock PostgreSQL breaks after a second, with a 451)."""
    def work(s: Session) -> None:
        save(s, place(lock(s, ids.values()), ids))
        add_records(s, message_id, ids.values(), app.clock.now(), outcome, recipients,
                    counted)

    _shared(app, work, ids.values())


def counting(app: App, keys: list[ObjectKey],
             count: Callable[[dict[ObjectKey, str]], T]) -> tuple[dict[ObjectKey, str], T]:
    """``count(ids)`` with the keys' object ids (:func:`.objects.ensure`), once more with
    ids read again when a remembered one turned out stale."""
    try:
        ids = ensure(app, keys)
        return ids, count(ids)
    except StaleIds as err:
        log.warning("event=sender_objects_reread error=%s", err)
        forget_ids(app)
        ids = ensure(app, keys)
        return ids, count(ids)


def forget(app: App, message_id: str, outcome: str | None = None) -> None:
    """Take back what was counted for a message that did not leave (the MTA retries it,
    and a retry must not be counted twice)."""
    cond = [SendRecord.message_id == message_id]
    if outcome is not None:
        cond.append(SendRecord.outcome == outcome)
    with app.db.session() as s:
        _take_back(s, and_(*cond))
        s.execute(delete(SendRecord).where(and_(*cond)))


def relabel(app: App, message_id: str, outcome: str) -> None:
    """A counted send that was held after all (its allowance comes back)."""
    cond = SendRecord.message_id == message_id
    with app.db.session() as s:
        if outcome != SENT:
            _take_back(s, cond)
        s.execute(update(SendRecord).where(cond).values(outcome=outcome))


def _take_back(s: Session, cond: Any) -> None:
    """Lock the objects of the counted ``sent`` records ``cond`` names (in id order, as
    :func:`admit` does) and take the records out of their counters."""
    records = s.execute(select(SendRecord.object_id, SendRecord.at, SendRecord.recipients)
                        .where(cond, SendRecord.outcome == SENT,
                               SendRecord.counted.is_(True))).all()
    if records:
        rows = lock(s, [r.object_id for r in records])
        uncount(rows, records)
        save(s, rows.values())
