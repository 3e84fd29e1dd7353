"""Background services: work ie-filterd does besides answering the MTA (sweeps,
auto-release, the learn spool, the owners' CLI socket, event observers).

Plugins declare them with the ``ie_background`` hook; the daemon runs them.  A service's
:class:`Scope` says how many run: ``DAEMON`` services run once per ie-filterd (with
``filter.workers`` > 1, in one services process beside the workers), ``WORKER`` services
in every process that serves SMTP.

A service is a function that runs until its stop event is set.  One that raises is
logged and started again after :data:`RESTART_PAUSE` seconds; :func:`periodic` makes a
service of a function called every so many seconds (an exception in one pass is logged
and the next pass comes as usual).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger("ie.background")

RESTART_PAUSE = 5.0
"""Seconds before a service that raised is started again."""


class Scope(StrEnum):
    DAEMON = "daemon"
    """Once per ie-filterd, whatever the number of workers."""
    WORKER = "worker"
    """In every process that serves SMTP."""


@dataclass(frozen=True)
class BackgroundService:
    name: str
    run: Callable[[threading.Event], object]
    """Runs until the event is set: check it often, or wait on it between passes."""
    scope: Scope = Scope.DAEMON


def periodic(name: str, every: float, step: Callable[[], object],
             scope: Scope = Scope.DAEMON, first: float | None = None) -> BackgroundService:
    """A service that calls ``step`` every ``every`` seconds, the first time after
    ``first`` seconds (default: ``every``)."""
    def run(stop: threading.Event) -> None:
        wait = every if first is None else first
        while not stop.wait(wait):
            wait = every
            try:
                step()
            except Exception:
                log.exception("event=background_error service=%s", name)
    return BackgroundService(name, run, scope)


class Runner:
    """Runs services in threads of this process, each restarted when it raises."""

    def __init__(self, services: Iterable[BackgroundService], scopes: Sequence[Scope]) -> None:
        self.services = [s for s in services if s.scope in scopes]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for service in self.services:
            thread = threading.Thread(target=self._keep_running, args=(service,),
                                      name=f"ie-{service.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _keep_running(self, service: BackgroundService) -> None:
        log.info("event=background_started service=%s scope=%s pid=%d", service.name,
                 service.scope, os.getpid())
        while not self._stop.is_set():
            try:
                service.run(self._stop)
            except Exception:
                log.exception("event=background_error service=%s (restarting in %.0f s)",
                              service.name, RESTART_PAUSE)
                self._stop.wait(RESTART_PAUSE)
        log.info("event=background_stopped service=%s pid=%d", service.name, os.getpid())

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every service to stop and wait for them up to ``timeout`` seconds in all
        (their threads are daemon threads: one that does not stop dies with the process)."""
        self._stop.set()
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
            if thread.is_alive():
                log.warning("event=background_stop_slow thread=%s", thread.name)
        self._threads.clear()
