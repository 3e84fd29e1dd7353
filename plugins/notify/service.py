"""The notifier: reads the outbox, plans notifications and digests, delivers them."""

from __future__ import annotations

import logging
import threading
import time

from ie_core import App
from ie_core.events import Event, Subscriber
from ie_plugins.notify.delivery import Delivery, DeliveryReport
from ie_plugins.notify.plan import DigestRequest, PlannedDigest, handle_event, plan_digests
from ie_plugins.notify.rendering import Templates

log = logging.getLogger("ie.notify")

CONSUMER = "notify"
"""The notifier's cursor name in ``event_cursors``."""


class Notifier:
    def __init__(self, app: App) -> None:
        self.app = app
        self.templates = Templates(app.config.get("notify.template_dir"))
        self.delivery = Delivery(app)
        self.subscriber = Subscriber(app.db, CONSUMER, app.wake_endpoint,
                                     app.config.get("events.poll_interval"))
        self._work = threading.Event()
        self._stop = threading.Event()

    def handle(self, ev: Event) -> None:
        """One event: plan its notifications (ie-filterd hands events to the ``ie_event``
        observers itself, whether the notifier runs or not)."""
        handle_event(self.app, self.templates, ev)
        self._work.set()

    def catch_up(self) -> int:
        return self.subscriber.catch_up(self.handle)

    def digests(self, req: DigestRequest) -> list[PlannedDigest]:
        return plan_digests(self.app, self.templates, req)

    def run_once(self) -> DeliveryReport:
        """What one turn of the service does: recover, read events, due digests, send."""
        self.delivery.recover()
        self.catch_up()
        self.digests(DigestRequest())
        return self.delivery.deliver_due()

    def serve(self) -> None:
        """Until :meth:`stop`: events as they come (woken by ZeroMQ or the poll), due
        digests and retries every ``notify.tick_interval`` seconds."""
        reader = threading.Thread(target=self.subscriber.run, args=(self.handle,),
                                  name="ie-notify-events", daemon=True)
        reader.start()
        tick = self.app.config.get("notify.tick_interval")
        log.info("event=notifier_started endpoint=%s", self.app.wake_endpoint)
        try:
            while not self._stop.is_set():
                self._work.clear()
                try:
                    self.delivery.recover()
                    self.digests(DigestRequest())
                    self.delivery.deliver_due()
                except Exception:
                    log.exception("event=notifier_error")
                self._work.wait(tick)
        finally:
            self._stop_reader(reader)
            self.delivery.close()
            log.info("event=notifier_stopped")

    def _stop_reader(self, reader: threading.Thread, timeout: float = 5.0) -> None:
        """Wake-ups end the reader's wait (the first may be lost while the publisher
        connects); after ``timeout`` it is left to die with the process: it is a daemon
        thread and handling an event again is harmless."""
        self.subscriber.stop()
        deadline = time.monotonic() + timeout
        while reader.is_alive() and time.monotonic() < deadline:
            self.app.publisher.wake()
            reader.join(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._work.set()
