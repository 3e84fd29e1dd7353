"""Send limits through the real filter daemon: concurrent sessions, several worker
processes, two daemons on one PostgreSQL, and auto-release.  Held mail goes to the real
quarantine plugin."""

from __future__ import annotations

import smtplib
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from ie_core.db import Database
from ie_plugins.quarantine.models import HeldMessage
from ie_plugins.ratelimit.limits import save_server_settings
from tests.fixtures.daemon import DaemonProcess

PIPELINE = {"pipeline.outgoing": ["whitelist", "ratelimit"], "quarantine.cli_socket": ""}
HOUR = timedelta(hours=1)
MSG = b"From: bob@example.com\r\nSubject: hello\r\n\r\nbody\r\n"


def send_concurrently(ports: list[int], count: int, sender: str = "bob@example.com") -> Counter:
    """``count`` clients at once (spread over ``ports``), one message each; the replies."""
    replies: Counter = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(count)

    def client(i: int) -> None:
        port = ports[i % len(ports)]
        barrier.wait(30)
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                s.ehlo()
                s.mail(sender)
                s.rcpt(f"r{i}@example.org")
                code, text = s.data(MSG)
            result: object = (code, b"held as" in text)
        except smtplib.SMTPException as err:
            result = repr(err)
        with lock:
            replies[result] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return replies


def held_reasons(url: str) -> list[list[str]]:
    db = Database(url)
    try:
        with db.session() as s:
            return [list(r) for r in s.scalars(select(HeldMessage.reasons))]
    finally:
        db.dispose()


def assert_ten_sent_forty_held(replies: Counter, sink, url: str) -> None:
    assert replies == {(250, False): 10, (250, True): 40}
    time.sleep(0.3)  # nothing else trickles in
    assert len(sink.messages) == 10
    assert held_reasons(url) == [["ratelimit"]] * 40


def test_fifty_concurrent_messages_with_a_limit_of_ten(run_daemon, sink, db_url):
    d = run_daemon(db_url=db_url, **PIPELINE)
    save_server_settings(d.app, {"sender_email": 10})
    replies = send_concurrently([d.outgoing_port], 50)
    assert_ten_sent_forty_held(replies, sink, d.app.config.database_url)


def test_fifty_concurrent_messages_over_two_worker_processes(tmp_path, make_app, sink):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    save_server_settings(make_app(db_url=url), {"sender_email": 10})
    d = DaemonProcess(tmp_path, {**PIPELINE, "ie.database_url": url, "filter.workers": 2,
                                 "filter.reinject": f"127.0.0.1:{sink.port}"}).start()
    try:
        replies = send_concurrently([d.outgoing_port], 50)
        pids = {line.split("pid=")[1].split()[0] for line in d.log().splitlines()
                if "event=listening direction=outgoing" in line and "pid=" in line}
    finally:
        assert d.stop() == 0
    assert len(pids) == 2
    assert_ten_sent_forty_held(replies, sink, url)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # nodes share PostgreSQL
def test_fifty_concurrent_messages_over_two_daemons_on_one_postgresql(tmp_path, make_app,
                                                                      sink, db_url):
    save_server_settings(make_app(db_url=db_url), {"sender_email": 10})
    common = {**PIPELINE, "ie.database_url": db_url,
              "filter.reinject": f"127.0.0.1:{sink.port}"}
    daemons = [DaemonProcess(tmp_path, common, name=f"node{i}").start() for i in (1, 2)]
    try:
        replies = send_concurrently([d.outgoing_port for d in daemons], 50)
    finally:
        for d in daemons:
            d.stop()
    assert_ten_sent_forty_held(replies, sink, db_url)


def test_auto_release_resends_as_the_window_opens_and_never_exceeds_the_limit(
        run_daemon, sink, db_url, clock):
    d = run_daemon(db_url=db_url, **PIPELINE, **{"ratelimit.auto_release_interval": 0.05})
    app = d.app
    save_server_settings(app, {"sender_email": 2})
    sent_at = []
    for i in range(5):
        with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=30) as s:
            s.sendmail("bob@example.com", [f"r{i}@example.org"], MSG)
        sent_at.append(clock.now())
        clock.advance(minutes=1)
    assert len(sink.messages) == 2 and len(held_reasons(app.config.database_url)) == 3
    time.sleep(0.3)
    assert len(sink.messages) == 2  # off by default: nothing is re-sent
    app.settings.set("ratelimit.auto_release", True)
    time.sleep(0.3)
    assert len(sink.messages) == 2  # on, but the window is still full
    clock.set(sent_at[0] + timedelta(minutes=59, seconds=59))
    time.sleep(0.3)
    assert len(sink.messages) == 2
    clock.set(sent_at[0] + HOUR)  # the first send leaves the window
    got = sink.wait_for(3)
    time.sleep(0.3)
    assert len(got) == 3 and len(sink.messages) == 3  # one slot, one release
    assert b"X-IE-Released: by=auto-release" in sink.messages[2].data
    assert sink.messages[2].rcpt_tos == ["r2@example.org"]  # oldest first
    clock.set(sent_at[1] + HOUR)
    assert len(sink.wait_for(4)) == 4
    time.sleep(0.3)
    assert len(sink.messages) == 4
    assert held_reasons(app.config.database_url) == [["ratelimit"]]
    assert [m.rcpt_tos for m in sink.messages[2:]] == [["r2@example.org"], ["r3@example.org"]]

