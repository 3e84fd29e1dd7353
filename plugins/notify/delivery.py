"""Sending the ledger's notifications through the MTA's reinjection port, once each.

The protocol (docs/notifications.md, "Exactly once"):

1. claim a ``pending`` row: ``sending``, with who claimed it (compare-and-set, so two
   notifiers never send the same row);
2. open the SMTP transaction and send the whole message except the final dot;
3. commit ``handed_over``; only if that commit succeeds is the final dot sent (the MTA's
   commit point).  If the commit fails, the connection is closed without the dot and the
   MTA discards the message;
4. record the MTA's answer: ``sent``; a 4xx goes back to ``pending`` with a backoff; a
   5xx (or too many 4xx) is ``failed``.  If the connection broke or timed out after
   ``handed_over`` was committed, the dot may have reached the MTA: the row is recorded
   ``sent`` (unconfirmed), never sent again.

After a crash, rows a dead notifier left in ``sending`` never reached the final dot and
are sent again; rows in ``handed_over`` reached it and are recorded as sent.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update

from ie_core import App
from ie_core.smtp.reinject import BROKEN, TIMED_OUT, Reinjector, Reply
from ie_plugins.notify import options
from ie_plugins.notify.models import FAILED, HANDED_OVER, PENDING, SENDING, SENT, Notification

log = logging.getLogger("ie.notify")

FAULT_ENV = "IE_NOTIFY_FAULT"
"""Fault injection for tests: ``before_dot`` or ``after_send`` makes the process exit at
that point of the protocol (as a kill -9 would)."""


class LostClaim(Exception):
    """Another notifier took the row over (ours was considered dead)."""


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _fault(point: str) -> None:
    if os.environ.get(FAULT_ENV) == point:
        log.warning("event=fault_injected point=%s", point)
        logging.shutdown()
        os._exit(75)


class Delivery:
    """Sends due ledger rows one at a time (one instance per process and thread)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.reinjector = Reinjector.from_config(app)
        self.host = socket.gethostname()
        self.token = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @property
    def lease(self) -> timedelta:
        """After this long a claim counts as dead even if we cannot see its process."""
        return timedelta(seconds=4 * self.app.config.get("filter.reinject_timeout") + 60)

    def close(self) -> None:
        self.reinjector.close()

    # -- recovery -------------------------------------------------------------------
    def recover(self) -> int:
        """Resolve rows left ``sending``/``handed_over`` by a notifier that died."""
        now = self.app.clock.now()
        fixed = 0
        with self.app.db.session() as s:
            rows = s.scalars(select(Notification).where(
                Notification.state.in_((SENDING, HANDED_OVER)))).all()
            for row in rows:
                if not self._claim_is_dead(row, now):
                    continue
                fixed += 1
                if row.state == SENDING:
                    row.state, row.next_attempt_at = PENDING, now
                    log.warning("event=notification_resend key=%s reason=claimer_died_before"
                                "_final_dot claimed_by=%s", row.key, row.claimed_by)
                else:
                    row.state, row.sent_at = SENT, row.claimed_at
                    row.last_reply = "unconfirmed: notifier stopped after the final dot"
                    log.warning("event=notification_unconfirmed key=%s claimed_by=%s "
                                "detail=final_dot_was_sent_reply_not_recorded",
                                row.key, row.claimed_by)
                row.claimed_by = None
        return fixed

    def _claim_is_dead(self, row: Notification, now: datetime) -> bool:
        claimer = row.claimed_by or ""
        if claimer == self.token:
            return True  # ours, and we deliver from one thread: nothing is in flight
        if row.claimed_at is None or now - row.claimed_at > self.lease:
            return True
        host, _, rest = claimer.partition(":")
        pid = rest.partition(":")[0]
        if host != self.host or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    # -- sending --------------------------------------------------------------------
    def deliver_due(self, keys: list[str] | None = None, limit: int = 200) -> DeliveryReport:
        """Send pending rows whose time has come (or only those named by ``keys``)."""
        report = DeliveryReport()
        with self.app.db.session() as s:
            q = select(Notification.id).where(Notification.state == PENDING,
                                              Notification.next_attempt_at <= self.app.clock.now())
            if keys is not None:
                q = q.where(Notification.key.in_(keys))
            ids = list(s.scalars(q.order_by(Notification.id).limit(limit)).all())
        for row_id in ids:
            self._deliver(row_id, report)
        return report

    def _claim(self, row_id: int) -> Notification | None:
        now = self.app.clock.now()
        with self.app.db.session() as s:
            done = s.execute(update(Notification)
                             .where(Notification.id == row_id, Notification.state == PENDING)
                             .values(state=SENDING, claimed_by=self.token, claimed_at=now,
                                     attempts=Notification.attempts + 1))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return s.get(Notification, row_id)

    def _handed_over(self, row_id: int) -> None:
        _fault("before_dot")
        with self.app.db.session() as s:
            done = s.execute(update(Notification)
                             .where(Notification.id == row_id, Notification.state == SENDING,
                                    Notification.claimed_by == self.token)
                             .values(state=HANDED_OVER))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise LostClaim(f"notification {row_id} was taken over")

    def _deliver(self, row_id: int, report: DeliveryReport) -> None:
        row = self._claim(row_id)
        if row is None:
            return
        marked = False

        def hand_over() -> None:
            nonlocal marked
            self._handed_over(row_id)
            marked = True

        try:
            result = self.reinjector.send(options.from_address(self.app), [row.recipient],
                                          row.message, before_final_dot=hand_over)
        except LostClaim:
            log.warning("event=notification_lost_claim key=%s", row.key)
            return
        except Exception as err:  # the database failed: no final dot was sent
            log.error("event=notification_not_sent key=%s error=%s", row.key, err)
            report.deferred.append(row.key)
            try:
                self._record(row, Reply(451, f"4.3.0 notifier error: {type(err).__name__}"))
            except Exception:  # still down: recover() puts the row back later
                log.exception("event=notification_record_failed key=%s", row.key)
            return
        _fault("after_send")
        if marked and result.reply in (BROKEN, TIMED_OUT):
            self._record_unconfirmed(row, result.reply)
            report.sent.append(row.key)
            return
        self._record(row, result.reply)
        bucket = (report.sent if result.reply.ok else
                  report.failed if self._gave_up(row, result.reply) else report.deferred)
        bucket.append(row.key)

    def _gave_up(self, row: Notification, reply: Reply) -> bool:
        return reply.permanent or row.attempts >= self.app.config.get("notify.max_attempts")

    def _backoff(self, attempts: int) -> timedelta:
        base = self.app.config.get("notify.retry_base")
        return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0),
                                     self.app.config.get("notify.retry_max")))

    def _record_unconfirmed(self, row: Notification, reply: Reply) -> None:
        """The dot was (or may have been) written but no answer came: sent, unconfirmed."""
        log.warning("event=notification_unconfirmed key=%s to=%s "
                    "detail=no_reply_after_the_final_dot reply=%s", row.key, row.recipient, reply)
        self._update(row, {"state": SENT, "sent_at": self.app.clock.now(), "claimed_by": None,
                           "last_reply": f"unconfirmed: {reply}"[:512]})

    def _record(self, row: Notification, reply: Reply) -> None:
        now = self.app.clock.now()
        values: dict[str, object] = {"last_reply": str(reply)[:512], "claimed_by": None}
        if reply.ok:
            values.update(state=SENT, sent_at=now)
            log.info("event=notification_sent key=%s to=%s message_id=%s reply=%s",
                     row.key, row.recipient, row.message_id, reply)
        elif self._gave_up(row, reply):
            values.update(state=FAILED)
            log.error("event=notification_failed key=%s to=%s attempts=%d reply=%s",
                      row.key, row.recipient, row.attempts, reply)
        else:
            values.update(state=PENDING, next_attempt_at=now + self._backoff(row.attempts))
            log.warning("event=notification_deferred key=%s to=%s attempts=%d reply=%s",
                        row.key, row.recipient, row.attempts, reply)
        self._update(row, values)

    def _update(self, row: Notification, values: dict[str, object]) -> None:
        """Write ``values`` to ``row`` if our claim still holds."""
        with self.app.db.session() as s:
            s.execute(update(Notification).where(Notification.id == row.id,
                                                 Notification.claimed_by == self.token)
                      .values(**values))
