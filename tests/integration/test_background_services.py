"""Background services have one home: with several workers each daemon-wide service runs
once (in the services process), a service that raises keeps going, and event observers
see the outbox without the notifier.

The process tests load a third-party plugin (``tests/fixtures/probe_plugin``, put on
``PYTHONPATH``) that records what its ``ie_event`` observer and its failing periodic
service do."""

from __future__ import annotations

import json
import signal
import smtplib
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ie_core import App, hookimpl
from ie_core.background import Runner, Scope, periodic
from ie_core.db import Database
from ie_core.db.models import EventCursor
from ie_core.events import OBSERVERS, Event
from ie_plugins.quarantine import socket_api
from ie_plugins.quarantine.models import HeldMessage
from ie_plugins.ratelimit.limits import save_server_settings
from tests.fixtures.daemon import DaemonProcess, wait_for_cli_socket

MSG = b"From: a@example.com\r\nSubject: t\r\n\r\nbody\r\n"
DAEMON_SERVICES = {"cli-server", "quarantine-cli-socket", "quarantine-sweep", "auto-release",
                   "learn-spool", "incoming-greylist-prune", "junk-retention",
                   "message-log-prune"}
PROBE_ENV = {"PYTHONPATH": str(Path(__file__).parents[1] / "fixtures" / "probe_plugin")}


def started(log: str) -> Counter[tuple[str, str]]:
    """(service, pid) of every ``background_started`` line."""
    found: Counter[tuple[str, str]] = Counter()
    for line in log.splitlines():
        if "event=background_started" in line:
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            found[(fields["service"], fields["pid"])] += 1
    return found


def worker_pids(log: str) -> set[int]:
    return {int(line.split("pid=")[1].split()[0]) for line in log.splitlines()
            if "event=listening direction=outgoing" in line}


def records(path: Path) -> list[dict[str, Any]]:
    """The probe plugin's JSON lines."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_until(done: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)


def send(port: int, count: int, sender: str = "a@example.com") -> None:
    for i in range(count):
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.sendmail(sender, [f"r{i}@example.org"], MSG)


def test_two_workers_run_each_daemon_service_once(tmp_path, sink, db_url):
    d = DaemonProcess(tmp_path, {"ie.database_url": db_url, "filter.workers": 2,
                                 "filter.reinject": f"127.0.0.1:{sink.port}"}).start()
    try:
        mail = threading.Thread(target=send, args=(d.outgoing_port, 20))
        mail.start()
        answers = []
        while mail.is_alive() or not answers:  # ie-cli's requests while the workers deliver
            answers.append(socket_api.call(d.cli_socket, "emails.list", {}))
        mail.join()
        assert len(sink.wait_for(20)) == 20
        assert answers and all(isinstance(a, dict) for a in answers)
        log = d.log()
        workers = worker_pids(log)
        services = started(log)
        assert len(workers) == 2
        assert sorted(name for name, _ in services) == sorted(DAEMON_SERVICES)
        assert len({pid for _, pid in services}) == 1  # all in the one services process
        assert not {int(pid) for _, pid in services} & workers
        assert log.count("event=cli_socket_listening") == 1

        d.signal(signal.SIGHUP)  # the services process restarts with the new configuration
        wait_until(lambda: len(started(d.log())) >= 2 * len(DAEMON_SERVICES))
        wait_for_cli_socket(d.cli_socket)
        assert isinstance(socket_api.call(d.cli_socket, "emails.list", {}), dict)
        assert d.log().count("event=cli_socket_listening") == 2
        assert worker_pids(d.log()) == workers  # the workers reloaded in place
    finally:
        assert d.stop() == 0


def test_each_event_is_observed_once_per_daemon_without_the_notifier(tmp_path, make_app,
                                                                      sink, db_url):
    save_server_settings(make_app(db_url=db_url), {"sender_email": 1})
    d = DaemonProcess(tmp_path, {
        "ie.database_url": db_url, "filter.workers": 2, "plugins.disabled": ["notify"],
        "filter.reinject": f"127.0.0.1:{sink.port}", "events.poll_interval": 0.2,
        "pipeline.outgoing": ["whitelist", "ratelimit"]}).start(env=PROBE_ENV)
    observed_path = tmp_path / "ie-data" / "probe-events.jsonl"
    db = Database(db_url)
    try:
        def observing() -> bool:  # the dispatch starts at the newest event
            with db.session() as s:
                return s.get(EventCursor, OBSERVERS) is not None
        wait_until(observing)
        send(d.outgoing_port, 3, sender="bob@example.com")  # one sent, two held
        wait_until(lambda: len([e for e in records(observed_path) if e["kind"] == "held"]) == 2)
        time.sleep(1.0)  # a second dispatch (another process, a second pass) shows by now
        log = d.log()
        with db.session() as s:
            held_ids = set(s.scalars(select(HeldMessage.id)))
    finally:
        db.dispose()
        assert d.stop() == 0
    observed = records(observed_path)
    held = [e for e in observed if e["kind"] == "held"]
    assert len(sink.messages) == 1
    assert {e["payload"]["id"] for e in held} == held_ids and len(held) == 2
    assert all(e["account"] == e["payload"]["account"] for e in held)
    assert len({e["id"] for e in observed}) == len(observed)  # each event once
    observers = {e["pid"] for e in observed}
    assert len(observers) == 1 and not observers & worker_pids(log)
    assert "worker_crashed" not in log and "worker_died" not in log


def test_a_failing_periodic_service_keeps_running_in_the_daemon(tmp_path, sink):
    d = DaemonProcess(tmp_path, {"filter.workers": 2,
                                 "filter.reinject": f"127.0.0.1:{sink.port}"}).start(env=PROBE_ENV)
    passes_path = tmp_path / "ie-data" / "probe-passes.jsonl"
    try:
        wait_until(lambda: len(records(passes_path)) >= 5)
        send(d.outgoing_port, 2)  # the daemon serves on
        assert len(sink.wait_for(2)) == 2
        log = d.log()
        stopping = time.monotonic()
    finally:
        assert d.stop() == 0
    assert time.monotonic() - stopping < 5  # stop is prompt
    passes = records(passes_path)
    assert len(passes) >= 5
    assert len({p["pid"] for p in passes}) == 1  # once per daemon, never in a worker
    assert not {p["pid"] for p in passes} & worker_pids(log)
    assert log.count("event=background_error service=probe-failing") >= 5
    assert log.count("event=background_started service=probe-failing") == 1
    time.sleep(0.3)
    assert len(records(passes_path)) == len(passes)  # stopped means stopped


def test_a_periodic_service_that_raises_keeps_running():
    calls: list[float] = []

    def step() -> None:
        calls.append(time.monotonic())
        raise RuntimeError("a bad pass")

    runner = Runner([periodic("flaky", 0.02, step)], (Scope.DAEMON,))
    runner.start()
    time.sleep(0.5)
    runner.stop()
    assert len(calls) >= 5
    count = len(calls)
    time.sleep(0.1)
    assert len(calls) == count  # stopped means stopped


def test_a_service_that_raises_is_started_again(monkeypatch):
    from ie_core import background
    monkeypatch.setattr(background, "RESTART_PAUSE", 0.05)
    runs: list[int] = []

    def run(stop: threading.Event) -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("crashed")
        stop.wait()

    runner = Runner([background.BackgroundService("crashy", run)], (Scope.DAEMON,))
    runner.start()
    deadline = time.monotonic() + 5
    while len(runs) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    assert len(runs) == 3


def test_only_the_scopes_asked_for_run():
    ran: list[str] = []
    services = [periodic("daemon-wide", 0.01, lambda: ran.append("daemon")),
                periodic("per-worker", 0.01, lambda: ran.append("worker"), Scope.WORKER)]
    runner = Runner(services, (Scope.WORKER,))
    runner.start()
    time.sleep(0.2)
    runner.stop()
    assert set(ran) == {"worker"}


class EventWatcher:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    @hookimpl
    def ie_event(self, app: App, event: Event) -> None:
        self.seen.append(event)


def test_event_observers_see_new_events_without_the_notifier(make_app, run_daemon, db_url):
    from ie_core.events import emit

    before = make_app(db_url=db_url)
    with before.db.session() as s:
        emit(s, before.clock, "old_kind", "acme", {"n": 0})  # history: not replayed
    watcher = EventWatcher()
    d = run_daemon(db_url=db_url, plugins=[("watcher", watcher)],
                   **{"plugins.disabled": ["notify"], "events.poll_interval": 0.1})
    with d.app.db.session() as s:
        emit(s, d.app.clock, "test_kind", "acme", {"n": 1})
    deadline = time.monotonic() + 10
    while not watcher.seen and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a second dispatch would show up by now
    assert [(e.kind, e.account, e.payload) for e in watcher.seen] == [
        ("test_kind", "acme", {"n": 1})]
