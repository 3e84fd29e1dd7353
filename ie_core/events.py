"""The events outbox and its wake-up channel.

An event row is written in the same transaction as the change it describes
(:func:`emit`).  After the commit, publishers send a one-frame ZeroMQ wake-up; a
subscriber (the notifier) binds the SUB side, reads the table from its cursor when woken
and also every ``events.poll_interval`` seconds, so nothing depends on a wake-up
arriving: a subscriber that was down catches up from the table.

ie-filterd hands every event to the plugins' ``ie_event`` observers itself
(:func:`observers_service`, a background service that polls the table): observing does
not depend on the notifier running.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import zmq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ie_core.background import BackgroundService, periodic
from ie_core.clock import Clock
from ie_core.db.models import Event as EventRow
from ie_core.db.models import EventCursor
from ie_core.db.session import Database

if TYPE_CHECKING:
    from ie_core.app import App

log = logging.getLogger("ie.events")

OBSERVERS = "observers"
"""The cursor name (``event_cursors``) of ie-filterd's ``ie_event`` dispatch."""


@dataclass(frozen=True)
class Event:
    id: int
    created_at: datetime
    kind: str
    account: str | None
    payload: dict[str, Any]


def emit(session: Session, clock: Clock, kind: str, account: str | None,
         payload: dict[str, Any]) -> None:
    """Add an event to ``session``: it is committed (or not) with the caller's change."""
    session.add(EventRow(created_at=clock.now(), kind=kind, account=account, payload=payload))


class WakePublisher:
    """Connects a PUB socket to the subscriber's endpoint and sends wake-ups.

    Wake-ups are hints: when nobody listens they are dropped, which is fine.
    """

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._lock = threading.Lock()
        self._socket: zmq.Socket[bytes] | None = None

    def wake(self) -> None:
        try:
            with self._lock:
                if self._socket is None:
                    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.PUB)
                    sock.setsockopt(zmq.LINGER, 100)
                    sock.setsockopt(zmq.SNDHWM, 10)
                    sock.connect(self._endpoint)
                    self._socket = sock
                self._socket.send(b"wake", zmq.NOBLOCK)
        except zmq.ZMQError as err:  # a missed wake-up only delays; the poll catches up
            log.debug("event=wake_failed endpoint=%s error=%s", self._endpoint, err)

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


class Subscriber:
    """Reads the outbox for one named consumer, at least once per event.

    ``handle`` is called for each new event in id order; the cursor advances after it
    returns, so an event whose handler raised is read again next time.
    """

    def __init__(self, db: Database, consumer: str, endpoint: str,
                 poll_interval: float) -> None:
        self._db = db
        self._consumer = consumer
        self._endpoint = endpoint
        self._poll_ms = int(poll_interval * 1000)
        self._stop = threading.Event()

    def catch_up(self, handle: Callable[[Event], None], batch: int = 100) -> int:
        done = 0
        while True:
            with self._db.session() as s:
                cursor = s.get(EventCursor, self._consumer)
                last = cursor.last_id if cursor else 0
                rows = s.scalars(select(EventRow).where(EventRow.id > last)
                                 .order_by(EventRow.id).limit(batch)).all()
                events = [Event(r.id, r.created_at, r.kind, r.account, dict(r.payload))
                          for r in rows]
            if not events:
                return done
            for ev in events:
                handle(ev)
                self._advance(ev.id)
                done += 1

    def start_at_end(self) -> None:
        """A consumer that has never read starts after the newest event (it observes
        what happens from now on, not the history)."""
        with self._db.session() as s:
            if s.get(EventCursor, self._consumer) is None:
                newest = s.scalar(select(func.max(EventRow.id))) or 0
                s.add(EventCursor(consumer=self._consumer, last_id=newest))

    def _advance(self, event_id: int) -> None:
        with self._db.session() as s:
            cursor = s.get(EventCursor, self._consumer)
            if cursor is None:
                s.add(EventCursor(consumer=self._consumer, last_id=event_id))
            else:
                cursor.last_id = max(cursor.last_id, event_id)

    def run(self, handle: Callable[[Event], None]) -> None:
        """Catch up, then wait for wake-ups (or the poll interval) until :meth:`stop`."""
        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.bind(self._endpoint)
        try:
            while not self._stop.is_set():
                try:
                    self.catch_up(handle)
                except Exception:
                    log.exception("event=subscriber_error consumer=%s", self._consumer)
                if sock.poll(self._poll_ms):
                    while sock.poll(0):
                        sock.recv()
        finally:
            sock.close()

    def stop(self) -> None:
        self._stop.set()


def observers_service(app: App) -> BackgroundService | None:
    """The daemon service that hands each new outbox event to the ``ie_event``
    observers, at least once; ``None`` when no plugin observes events."""
    if not app.hooks.pm.hook.ie_event.get_hookimpls():
        return None
    reader = Subscriber(app.db, OBSERVERS, app.wake_endpoint,
                        app.config.get("events.poll_interval"))
    reader.start_at_end()
    return periodic("event-observers", app.config.get("events.poll_interval"),
                    lambda: reader.catch_up(lambda ev: app.hooks.event(app, ev)))
