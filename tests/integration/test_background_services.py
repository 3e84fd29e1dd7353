"""Background services have one home: with several workers each daemon-wide service runs
once (in the services process), a service that raises keeps going, and event observers
see the outbox without the notifier."""

from __future__ import annotations

import json
import signal
import smtplib
import socket
import threading
import time
from collections import Counter

from ie_core import App, hookimpl
from ie_core.background import Runner, Scope, periodic
from ie_core.events import Event
from tests.fixtures.daemon import DaemonProcess, wait_for_cli_socket

MSG = b"From: a@example.com\r\nSubject: t\r\n\r\nbody\r\n"
DAEMON_SERVICES = {"quarantine-cli-socket", "quarantine-sweep", "auto-release", "learn-spool"}


def ask(path: str, op: str) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(json.dumps({"op": op, "args": {}}).encode() + b"\n")
        data = bytearray()
        while b"\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
    return json.loads(bytes(data).split(b"\n", 1)[0])


def started(log: str) -> Counter[tuple[str, str]]:
    """(service, pid) of every ``background_started`` line."""
    found: Counter[tuple[str, str]] = Counter()
    for line in log.splitlines():
        if "event=background_started" in line:
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            found[(fields["service"], fields["pid"])] += 1
    return found


def test_two_workers_run_each_daemon_service_once(tmp_path, sink):
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}",
                                 "filter.workers": 2}).start()
    try:
        for i in range(6):
            with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
                s.sendmail("a@example.com", [f"r{i}@example.org"], MSG)
        assert len(sink.wait_for(6)) == 6
        assert ask(d.cli_socket, "emails.list")["ok"] is True
        log = d.log()
        workers = {line.split("pid=")[1].split()[0] for line in log.splitlines()
                   if "event=listening direction=outgoing" in line}
        services = started(log)
        assert len(workers) == 2
        assert sorted(name for name, _ in services) == sorted(DAEMON_SERVICES)
        assert len({pid for _, pid in services}) == 1  # all in the one services process
        assert not {pid for _, pid in services} & workers
        assert log.count("event=cli_socket_listening") == 1

        d.signal(signal.SIGHUP)  # the services process restarts with the new configuration
        deadline = time.monotonic() + 15
        while len(started(d.log())) < 2 * len(DAEMON_SERVICES) and time.monotonic() < deadline:
            time.sleep(0.1)
        wait_for_cli_socket(d.cli_socket)
        assert ask(d.cli_socket, "emails.list")["ok"] is True
        assert d.log().count("event=cli_socket_listening") == 2
    finally:
        assert d.stop() == 0


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
