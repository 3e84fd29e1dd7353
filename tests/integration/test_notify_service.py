"""The real programs: ``ie-cli notify`` and ``ie-notifyd`` in subprocesses, a real SMTP sink.

Acceptance of issue 8: one digest per account with exactly its messages, nothing new the
second time, everything with ``--force-all-time``; a notifier killed between sending and
recording neither duplicates nor skips; a notifier that was down catches up.
"""

from __future__ import annotations

import email
import json
import os
import signal
import subprocess
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from ie_core import App
from ie_core.db.models import Account
from ie_core.events import emit
from ie_plugins.notify.models import SENT, Notification
from ie_plugins.quarantine.event_kinds import ACCOUNT_BLOCKED, HELD
from ie_plugins.ratelimit.counter import LIMIT_EXCEEDED
from tests.fixtures.paths import BIN
from tests.fixtures.sink import Received, Sink

ADMIN = "postmaster@example.net"


class Setup:
    def __init__(self, app: App, config: Path, tmp_path: Path) -> None:
        self.app, self.config, self.tmp = app, config, tmp_path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "ie-cli"), "--config", str(self.config), *args],
                              capture_output=True, text=True, timeout=60, env=_env())

    def notifyd_once(self, fault: str | None = None) -> subprocess.CompletedProcess[str]:
        env = _env()
        if fault:
            env["IE_NOTIFY_FAULT"] = fault
        return subprocess.run([str(BIN / "ie-notifyd"), "--config", str(self.config), "--once"],
                              capture_output=True, text=True, timeout=60, env=env)

    def start_notifyd(self) -> subprocess.Popen[bytes]:
        log = (self.tmp / "notifyd.log").open("ab")
        return subprocess.Popen([str(BIN / "ie-notifyd"), "--config", str(self.config)],
                                stdout=log, stderr=log, env=_env())

    def emit(self, kind: str, account: str, payload: dict) -> None:
        with self.app.db.session() as s:
            emit(s, self.app.clock, kind, account, payload)

    def hold(self, held_id: str, account: str) -> None:
        self.emit(HELD, account, {"id": held_id, "account": account,
                                  "sender": f"{account}@site.example",
                                  "recipients": ["x@example.org"], "subject": f"msg {held_id}",
                                  "reasons": ["spam"], "size": 10})

    def ledger(self) -> list[Notification]:
        with self.app.db.session() as s:
            return list(s.scalars(select(Notification).order_by(Notification.id)).all())


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IE_CONFIG", "IE_NOTIFY_FAULT")}
    return env


@pytest.fixture
def setup(make_app, db_url, sink: Sink, tmp_path: Path) -> Setup:
    values = {"notify.admin_address": ADMIN, "filter.reinject": f"127.0.0.1:{sink.port}",
              "ie.hostname": "mx.example.net"}
    app = make_app(db_url=db_url, **values)
    with app.db.session() as s:
        for name in ("alice", "bob"):
            s.add(Account(name=name, owner_email=f"{name}@owner.example",
                          created_at=app.clock.now()))
    config = tmp_path / "notify.toml"
    config.write_text(f"""
[ie]
data_dir = "{tmp_path / 'data'}"
database_url = "{db_url}"
pid_file = "{tmp_path / 'ie-filterd.pid'}"
hostname = "mx.example.net"

[filter]
reinject = "127.0.0.1:{sink.port}"
reinject_timeout = 5.0

[notify]
admin_address = "{ADMIN}"
from_address = "ie@example.net"
template_dir = "{tmp_path / 'templates'}"
tick_interval = 30.0

[events]
poll_interval = 30.0
""")
    return Setup(app, config, tmp_path)


def parsed(got: Received) -> EmailMessage:
    msg = email.message_from_bytes(got.data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def listed_ids(got: Received) -> list[str]:
    body = parsed(got).get_body(("plain",))
    assert body is not None
    return sorted(line.split("--ids ")[1] for line in body.get_content().splitlines()
                  if "ie-cli emails release --ids" in line)


def to(sink: Sink, address: str) -> list[Received]:
    return [m for m in sink.messages if m.rcpt_tos == [address]]


def test_digest_once_per_account_then_nothing_then_all_time(setup: Setup, sink: Sink) -> None:
    for i in range(3):
        setup.hold(f"a{i}", "alice")
    setup.hold("b0", "bob")
    done = setup.cli("notify", "send", "--json")
    assert done.returncode == 0, done.stderr
    items = json.loads(done.stdout)["items"]
    assert {(i["scope"], i["messages"], i["status"]) for i in items} == {
        ("owner:alice", 3, "sent"), ("owner:bob", 1, "sent"), ("admin", 4, "sent")}
    [alice] = to(sink, "alice@owner.example")
    [bob] = to(sink, "bob@owner.example")
    assert listed_ids(alice) == ["a0", "a1", "a2"]
    assert listed_ids(bob) == ["b0"]
    assert parsed(alice)["Subject"] == "3 of your outgoing messages are held on mx.example.net"
    count = len(sink.messages)

    again = setup.cli("notify", "send", "--force-all", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["items"] == []
    assert len(sink.messages) == count

    setup.hold("a3", "alice")
    only = setup.cli("notify", "send", "--account", "alice", "--json")
    assert [i["messages"] for i in json.loads(only.stdout)["items"]] == [1]
    assert listed_ids(to(sink, "alice@owner.example")[-1]) == ["a3"]

    every = setup.cli("notify", "send", "--force-all-time", "--account", "alice")
    assert every.returncode == 0, every.stderr
    assert listed_ids(to(sink, "alice@owner.example")[-1]) == ["a0", "a1", "a2", "a3"]
    assert len(to(sink, "bob@owner.example")) == 1


@pytest.mark.parametrize("fault", ["after_send", "before_dot"])
def test_killed_between_send_and_record_no_duplicate_nothing_skipped(
        setup: Setup, sink: Sink, fault: str) -> None:
    for account in ("alice", "bob", "carol"):
        setup.emit(ACCOUNT_BLOCKED, account, {"account": account, "actor": "root"})
    killed = setup.notifyd_once(fault=fault)
    assert killed.returncode == 75, killed.stderr
    assert f"event=fault_injected point={fault}" in killed.stderr
    assert len(sink.messages) == (1 if fault == "after_send" else 0)

    restarted = setup.notifyd_once()
    assert restarted.returncode == 0, restarted.stderr
    rows = setup.ledger()
    assert [r.state for r in rows] == [SENT] * 3
    ids = [parsed(m)["Message-ID"] for m in sink.messages]
    assert sorted(ids) == sorted(r.message_id for r in rows)  # each exactly once
    assert len(sink.messages) == 3
    subjects = sorted(parsed(m)["Subject"] for m in sink.messages)
    assert subjects == [f"Account {a} blocked on mx.example.net" for a in ("alice", "bob",
                                                                           "carol")]


def _wait(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_notifier_down_while_10_events_happen_handles_all_10(setup: Setup, sink: Sink) -> None:
    for i in range(5):
        setup.emit(ACCOUNT_BLOCKED, f"acct{i}", {"account": f"acct{i}", "actor": "root"})
        setup.emit(LIMIT_EXCEEDED, f"acct{i}", {"object_id": str(i), "so_type": "account",
                                                 "name": f"acct{i}", "account": f"acct{i}",
                                                 "limit": 10, "used": 11})
    proc = setup.start_notifyd()
    try:
        assert _wait(lambda: len(sink.messages) >= 10), (setup.tmp / "notifyd.log").read_text()
        time.sleep(0.3)
        assert len(sink.messages) == 10
        assert len({parsed(m)["Message-ID"] for m in sink.messages}) == 10
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    assert [r.state for r in setup.ledger()] == [SENT] * 10


def test_running_notifier_is_woken_by_zeromq(setup: Setup, sink: Sink) -> None:
    """The poll interval is 30 s: a fast delivery shows the wake-up did it."""
    setup.emit(ACCOUNT_BLOCKED, "alice", {"account": "alice", "actor": "root"})
    proc = setup.start_notifyd()
    try:
        assert _wait(lambda: len(sink.messages) == 1), (setup.tmp / "notifyd.log").read_text()
        setup.emit(ACCOUNT_BLOCKED, "bob", {"account": "bob", "actor": "root"})
        started = time.monotonic()
        while len(sink.messages) < 2 and time.monotonic() - started < 10:
            setup.app.publisher.wake()  # a hint; the first may go out before it connects
            time.sleep(0.2)
        assert len(sink.messages) == 2
        assert time.monotonic() - started < 10
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0


def test_notify_test_sends_a_sample_of_every_template(setup: Setup, sink: Sink) -> None:
    done = setup.cli("notify", "test", "--to", "admin@example.org", "--json")
    assert done.returncode == 0, done.stderr
    items = json.loads(done.stdout)["items"]
    assert {i["template"] for i in items} == {"admin_held", "admin_summary", "limit_exceeded",
                                              "account_blocked", "owner_digest", "owner_action"}
    assert len(to(sink, "admin@example.org")) == 6
    assert setup.ledger() == []  # samples are not recorded


def test_override_directory_is_used_by_the_programs(setup: Setup, sink: Sink) -> None:
    (setup.tmp / "templates").mkdir()
    (setup.tmp / "templates" / "account_blocked.subject.j2").write_text(
        "EDITED: {{ account }} is blocked")
    (setup.tmp / "templates" / "account_blocked.txt.j2").write_text("{% if %}")
    setup.emit(ACCOUNT_BLOCKED, "alice", {"account": "alice", "actor": "root"})
    done = setup.notifyd_once()
    assert done.returncode == 0, done.stderr
    assert "event=template_fallback" in done.stderr and "account_blocked.txt.j2" in done.stderr
    [got] = sink.messages
    assert parsed(got)["Subject"] == "EDITED: alice is blocked"
    body = parsed(got).get_body(("plain",))
    assert body is not None and "The account alice was blocked by root" in body.get_content()


@pytest.mark.parametrize("args, message", [
    (["notify", "test", "--to", "not an address"], "not a valid address"),
    (["notify", "send", "--account", "nosuch"], "does not exist"),
    (["notify", "schedule", "--account", "nosuch", "--period", "daily"], "does not exist"),
])
def test_user_mistakes_are_one_line(setup: Setup, args: list[str], message: str) -> None:
    done = setup.cli(*args)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert "Traceback" not in done.stderr


def test_schedule_never_stops_the_owner_digest(setup: Setup, sink: Sink) -> None:
    assert setup.cli("notify", "schedule", "--account", "alice", "--period",
                     "never").returncode == 0
    setup.hold("a0", "alice")
    setup.hold("b0", "bob")
    assert setup.cli("notify", "send", "--force-all").returncode == 0
    assert to(sink, "alice@owner.example") == []
    assert len(to(sink, "bob@owner.example")) == 1
    listed = setup.cli("notify", "list", "--json")
    assert {i["kind"] for i in json.loads(listed.stdout)["items"]} == {"owner_digest",
                                                                       "admin_summary"}


def test_hostile_held_message_renders_safely_end_to_end(setup: Setup, sink: Sink) -> None:
    setup.emit(HELD, "alice", {
        "id": "h1", "account": "alice",
        "sender": '"Evil\r\nBcc: victim@example.org\r\nX-Injected: 1" <evil@example.com>',
        "recipients": ["x@example.org\r\nBcc: other@example.org"],
        "subject": "<script>alert(1)</script>\r\nBcc: third@example.org", "reasons": ["spam"],
        "size": 10})
    done = setup.cli("notify", "send", "--account", "alice")
    assert done.returncode == 0, done.stderr
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == ["alice@owner.example"]
    msg = parsed(sink.messages[0])
    assert list(msg.keys()) == ["Subject", "From", "To", "Date", "Message-ID",
                                "Auto-Submitted", "X-IE-Notification", "MIME-Version",
                                "Content-Type"]
    head = sink.messages[0].data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head and b"\r\nX-Injected" not in head
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert "Subject:    <script>alert(1)</script>  Bcc: third@example.org" in text.get_content()
    assert "<script>" not in html.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.get_content()


def test_notify_send_sends_the_pending_notices_too(setup: Setup, sink: Sink) -> None:
    """What a cron job runs sends everything due: an account_blocked notice planned from
    the outbox goes out with the digests, not only under ie-notifyd (issue 16)."""
    setup.emit(ACCOUNT_BLOCKED, "alice", {"account": "alice", "actor": "root"})
    done = setup.cli("notify", "send", "--json")
    assert done.returncode == 0, done.stderr
    items = json.loads(done.stdout)["items"]
    assert {"scope": "notice:account_blocked", "recipient": ADMIN, "messages": None,
            "status": "sent"} in items
    assert len(to(sink, ADMIN)) == 1
    assert json.loads(setup.cli("notify", "send", "--json").stdout)["items"] == []
