"""ie-filterd's Prometheus metrics (``prometheus-client``).

Core counts messages, stages, reinjection replies, SMTP sessions and outbox events;
plugins add their own with :func:`counter` (the send limits' hits, classifier errors)
and scrape-time collectors with the ``ie_metrics_collectors`` hook.  Label values are
bounded sets (directions, actions, results, reasons, stage names, sender-object types,
event kinds): never a sender address.

With ``filter.workers`` > 1 every process writes its figures to files in one directory
(prometheus-client's multiprocess mode, :func:`use_directory`) and the ``/metrics``
endpoint adds them up, so a scrape shows the daemon's figures, not one worker's.  The
mode is chosen when prometheus-client is first imported, which is why nothing here
imports it before :func:`use_directory` (which does, before the workers fork) or
:func:`enable` (at start, so the first message does not pay for the import).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def use_directory(directory: Path | None) -> None:
    """Multiprocess mode, figures in ``directory`` (emptied first); ``None``: this
    process keeps its figures in memory, whatever ``PROMETHEUS_MULTIPROC_DIR`` it
    inherited (that directory holds another program's figures).  Call before any metric
    is touched and before the workers fork."""
    if directory is None:
        os.environ.pop(MULTIPROCESS_ENV, None)
        return
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)
    os.environ[MULTIPROCESS_ENV] = str(directory)
    import prometheus_client  # noqa: F401 - now, in multiprocess mode: the forks share it


def multiprocess() -> bool:
    return MULTIPROCESS_ENV in os.environ


class Counter(Protocol):
    def labels(self, *values: str) -> Counter: ...
    def inc(self, amount: float = 1) -> None: ...


class Gauge(Protocol):
    def labels(self, *values: str) -> Gauge: ...
    def inc(self, amount: float = 1) -> None: ...
    def dec(self, amount: float = 1) -> None: ...


class Histogram(Protocol):
    def labels(self, *values: str) -> Histogram: ...
    def observe(self, amount: float) -> None: ...


class _Nothing:
    """Every instrument while nothing is counted."""

    def labels(self, *values: str) -> _Nothing:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


@dataclass(frozen=True)
class Metrics:
    messages: Counter
    """Messages done, by ``direction``, ``action`` (the verdict) and ``result`` (what
    was done: delivered, held, rejected, tempfailed, *_downstream)."""
    reasons: Counter
    """Messages by ``direction`` and each ``reason`` of their verdict (spam, winexec...)."""
    latency: Histogram
    """Seconds from the end of DATA to the action done, by ``direction``."""
    stage_latency: Histogram
    """Seconds each ``stage`` took."""
    reinjection: Counter
    """Replies of the reinjection MTA to a message, by ``direction`` and ``reply_class``
    (2xx, 4xx, 5xx)."""
    reinjection_errors: Counter
    """Exchanges with the reinjection MTA (a recipient check or a delivery) that got no
    reply, by ``direction`` and ``kind`` (unreachable, timeout, broken)."""
    reinjection_latency: Histogram
    """Seconds a delivery to the reinjection MTA took, by ``direction``."""
    sessions: Gauge
    """Open SMTP sessions, by ``listener`` (the direction)."""
    events: Counter
    """Outbox events, by ``kind`` (held, released, deleted, evicted, limit_exceeded...)."""


_NOTHING = _Nothing()
NOTHING = Metrics(*([_NOTHING] * len(fields(Metrics))))
_lock = threading.Lock()
_enabled = False
_created: Metrics | None = None
_counters: dict[str, Counter] = {}


def enable() -> None:
    """Count from now on in this process (the daemon, when it serves the figures).  The
    instruments are made now, at start, so no message waits for prometheus-client to be
    imported."""
    global _enabled
    _enabled = True
    get()


def get() -> Metrics:
    """The metrics of this process (:data:`NOTHING` unless :func:`enable` was called)."""
    global _created
    if not _enabled:
        return NOTHING
    with _lock:
        if _created is None:
            _created = _create()
        return _created


def _create() -> Metrics:
    from prometheus_client import Counter, Gauge, Histogram

    return Metrics(
        messages=Counter("ie_messages", "Messages done", ["direction", "action", "result"]),
        reasons=Counter("ie_message_reasons", "Messages by verdict reason",
                        ["direction", "reason"]),
        latency=Histogram("ie_message_seconds", "Seconds from end of DATA to action",
                          ["direction"], buckets=LATENCY_BUCKETS),
        stage_latency=Histogram("ie_stage_seconds", "Seconds per pipeline stage",
                                ["stage"], buckets=LATENCY_BUCKETS),
        reinjection=Counter("ie_reinjection_replies", "Reinjection replies to a message",
                            ["direction", "reply_class"]),
        reinjection_errors=Counter("ie_reinjection_errors", "Exchanges with the reinjection "
                                   "MTA that got no reply", ["direction", "kind"]),
        reinjection_latency=Histogram("ie_reinjection_seconds",
                                      "Seconds a delivery to the reinjection MTA took",
                                      ["direction"], buckets=LATENCY_BUCKETS),
        sessions=Gauge("ie_smtp_sessions", "Open SMTP sessions", ["listener"],
                       multiprocess_mode="livesum"),
        events=Counter("ie_events", "Outbox events", ["kind"]),
    )


def counter(name: str, documentation: str, labels: Sequence[str]) -> Counter:
    """A plugin's own counter (``name`` without ``_total``), created once per process;
    a no-op unless the daemon counts."""
    if not _enabled:
        return _NOTHING
    with _lock:
        if name not in _counters:
            from prometheus_client import Counter as PrometheusCounter

            _counters[name] = PrometheusCounter(name, documentation, list(labels))
        return _counters[name]


def exposition(collectors: Sequence[Any]) -> bytes:
    """The text a scrape gets: this daemon's figures (every process's in multiprocess
    mode) and what ``collectors`` (objects with ``collect()``) report at this moment."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client import multiprocess as mp

    if multiprocess():
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    extra = CollectorRegistry()
    for collector in collectors:
        extra.register(collector)
    return generate_latest(registry) + generate_latest(extra)


def process_gone(pid: int) -> None:
    """Forget a dead process's live gauges (multiprocess mode; its counters stay)."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)
