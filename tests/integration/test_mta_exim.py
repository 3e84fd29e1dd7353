"""ie-config enable/disable on a real Exim (unpacked side by side with Postfix), and mail
through it end to end: an aiosmtpd sink stands for the Internet, another for the
mailboxes of example.test; ie-filterd runs as a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, select
from sqlalchemy.orm import Session

from ie_core.db.models import MessageLog
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.exim import INTERNET_CLIENT, PASSWORD, PrivateExim, require_exim
from tests.fixtures.mta import (
    check_each_path_is_checked_as_it_should,
    check_gtube_and_exe_are_held,
    check_limit_holds_the_excess,
    directions,
    ie_config,
    message,
    quiet_plugins,
    status_items,
    wait_rows,
)
from tests.fixtures.sink import Sink

pytestmark = pytest.mark.mta
ALICE = ("alice@example.test", PASSWORD)


class Stack:
    def __init__(self, tmp: Path) -> None:
        require_exim()
        self.internet, self.mailbox = Sink().start(), Sink().start()
        self.exim = PrivateExim(self.internet.port, self.mailbox.port)
        self.ie = DaemonProcess(tmp, {**self.exim.ie_settings(), **quiet_plugins(tmp)})
        self.config = self.ie.config
        self.db = tmp / "ie-data" / "ie.db"

    def close(self) -> None:
        self.ie.stop()
        self.exim.cleanup()
        self.internet.stop()
        self.mailbox.stop()

    def log_rows(self) -> list[MessageLog]:
        engine = create_engine(f"sqlite:///{self.db}")
        try:
            with Session(engine) as s:
                return list(s.scalars(select(MessageLog).order_by(MessageLog.received_at)))
        finally:
            engine.dispose()

    def reset(self) -> None:
        for sink in (self.internet, self.mailbox):
            with sink.handler.lock:
                sink.handler.messages.clear()
        engine = create_engine(f"sqlite:///{self.db}")
        with engine.begin() as conn:
            conn.execute(delete(MessageLog))
        engine.dispose()


@contextmanager
def new_stack(tmp: Path) -> Iterator[Stack]:
    st = Stack(tmp)
    try:
        yield st
    finally:
        st.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with new_stack(tmp_path) as st:
        yield st


@pytest.fixture(scope="module")
def wired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with new_stack(tmp_path_factory.mktemp("exim-e2e")) as st:
        done = ie_config(st.config, "enable", "--mta", "exim")
        assert done.returncode == 0, done.stderr
        st.exim.start()
        st.exim.wait_listening(st.exim.reinject_port)
        st.ie.start()
        yield st


@pytest.fixture
def running(wired: Stack) -> Stack:
    if wired.ie.proc is None or wired.ie.proc.poll() is not None:
        wired.ie.start(init_db=False)
    wired.exim.wait_queue_empty()
    wired.reset()
    return wired


def test_submission_reaches_the_internet_once_with_our_headers_and_the_sasl_user(running):
    running.exim.submit(message("hello"), ["carol@example.org"], "alice@example.test",
                        login=ALICE)
    [got] = running.internet.wait_for(1, timeout=20)
    assert got.rcpt_tos == ["carol@example.org"]
    assert got.data.count(b"X-IE-Filter-Action: deliver") == 1  # not filtered again
    assert b"X-IE-Auth-User" not in got.data  # ours is removed before it leaves
    [row] = wait_rows(running, 1)
    assert (row.direction, row.sender_email, row.outcome) == (
        "outgoing", "alice@example.test", "delivered")


def test_a_client_cannot_forge_the_identity_header(running):
    forged = message("forged", extra=b"X-IE-Auth-User: mallory@example.test\r\n")
    running.exim.submit(forged, ["carol@example.org"], "alice@example.test", login=ALICE)
    running.exim.submit(forged, ["bob@example.test"], "mallory@example.test")
    running.internet.wait_for(1, timeout=20)
    running.mailbox.wait_for(1, timeout=20)
    rows = {r.direction: r for r in wait_rows(running, 2)}
    assert rows["outgoing"].sender_email == "alice@example.test"
    assert rows["incoming"].sender_email == "mallory@example.test"  # the envelope only
    assert all(b"mallory@example.test\r\n" not in m.data.split(b"\r\n\r\n")[0]
               .replace(b"From: mallory", b"") for m in running.mailbox.messages)


def test_a_line_the_email_parser_stops_at_does_not_lose_the_identity(running):
    """Issue 13, hole 2: Exim appends the identity header at the end of the header block;
    a 'Foo :bar' line above it ends Python's header parse early."""
    odd = message("odd", extra=b"Foo :bar\r\n")
    running.exim.submit(odd, ['"(Authenticated sender: victim@example.test)"@example.org'],
                        "alice@example.test", login=ALICE)
    running.internet.wait_for(1, timeout=20)
    [row] = wait_rows(running, 1)
    assert (row.direction, row.sender_email) == ("outgoing", "alice@example.test")


def test_unauthenticated_mail_for_local_domains_is_incoming_local_mail_outgoing(running):
    running.exim.submit(message("in"), ["bob@example.test"], "someone@outside.test")
    running.exim.sendmail(message("local"), ["carol@example.org"])
    running.mailbox.wait_for(1, timeout=20)
    running.internet.wait_for(1, timeout=20)
    rows = wait_rows(running, 2)
    assert sorted((r.direction, r.rcpt_tos[0]) for r in rows) == [
        ("incoming", "bob@example.test"), ("outgoing", "carol@example.org")]


def test_mail_reinjected_from_loopback_is_routed_normally(running):
    import smtplib

    with smtplib.SMTP("127.0.0.1", running.exim.reinject_port, timeout=30) as smtp:
        smtp.sendmail("ie@example.test", ["carol@example.org"], message("reinjected"))
    [got] = running.internet.wait_for(1, timeout=20)
    assert b"X-IE-Filter-Id" not in got.data  # routed normally, not to ie
    assert running.log_rows() == []


def test_no_loss_while_ie_is_down(running):
    running.ie.stop()
    for i in range(20):
        running.exim.submit(message(f"n{i}"), ["carol@example.org"], "alice@example.test",
                            login=ALICE)
    assert running.exim.queue_count() == 20
    assert running.internet.messages == []
    running.ie.start(init_db=False)
    running.exim.flush()
    running.exim.wait_queue_empty()
    got = running.internet.wait_for(20, timeout=30)
    subjects = sorted(m.data.split(b"Subject: ")[1].split(b"\r\n")[0] for m in got)
    assert subjects == sorted(f"n{i}".encode() for i in range(20))


def test_enable_twice_then_disable_is_byte_identical(stack):
    original, ie_original = stack.exim.snapshot(), stack.config.read_bytes()
    stack.exim.start()
    first = ie_config(stack.config, "enable", "--mta", "exim")
    assert first.returncode == 0, first.stderr
    assert "told to reload" in first.stdout
    stack.exim.wait_listening(stack.exim.reinject_port)  # the daemon re-read its config
    wired, ie_wired = stack.exim.snapshot(), stack.config.read_bytes()
    assert b'auth_header = "X-IE-Auth-User"' in ie_wired
    second = ie_config(stack.config, "enable", "--json")
    assert second.returncode == 0 and '"changed": []' in second.stdout, second.stderr
    assert (stack.exim.snapshot(), stack.config.read_bytes()) == (wired, ie_wired)
    off = ie_config(stack.config, "disable")
    assert off.returncode == 0, off.stderr
    assert (stack.exim.snapshot(), stack.config.read_bytes()) == (original, ie_original)


def test_a_broken_template_rolls_back_with_exims_message(stack, tmp_path):
    original, ie_original = stack.exim.snapshot(), stack.config.read_bytes()
    good = Path(__import__("ie_plugins.mta", fromlist=["x"]).__file__).parent / "templates"
    broken = tmp_path / "templates"
    broken.mkdir()
    text = (good / "exim_transports.j2").read_text()
    (broken / "exim_transports.j2").write_text(text.replace("driver = smtp", "driver = smtq"))
    stack.config.write_text(stack.config.read_text().replace(
        "[mta]\n", f'[mta]\ntemplate_dir = "{broken}"\n'))
    ie_original = stack.config.read_bytes()
    done = ie_config(stack.config, "enable", "--mta", "exim")
    assert done.returncode == 1
    assert "rolled back" in done.stderr and "smtq" in done.stderr, done.stderr
    assert (stack.exim.snapshot(), stack.config.read_bytes()) == (original, ie_original)


def test_gtube_and_exe_are_held_and_a_release_is_not_filtered_again(running):
    """Needs the classify, winexec and quarantine plugins."""
    check_gtube_and_exe_are_held(running, lambda raw: running.exim.submit(
        raw, ["carol@example.org"], "alice@example.test", login=ALICE))


def test_an_account_over_its_limit_is_held_and_a_release_is_not_held_again(running):
    """Needs the ratelimit, accounts and quarantine plugins."""
    check_limit_holds_the_excess(running, lambda raw: running.exim.submit(
        raw, ["carol@example.org"], "alice@example.test", login=ALICE))


def test_every_way_a_local_user_sends_is_outgoing_internet_mail_is_incoming(running):
    """An authenticated client, a script relaying from relay_from_hosts on port 25
    without logging in, and local submission (exim -bm, as sendmail) all reach ie's
    outgoing listener; an Internet client writing to a local mailbox reaches the incoming
    one."""
    exim = running.exim
    check_each_path_is_checked_as_it_should(running, {
        "authenticated": lambda raw, rcpts: exim.submit(
            raw, rcpts, "alice@example.test", login=ALICE),
        "relay-host-on-port-25": lambda raw, rcpts: exim.submit(
            raw, rcpts, "alice@example.test"),
        "sendmail": exim.sendmail,
    }, lambda raw, rcpts: exim.submit(raw, rcpts, "someone@outside.test",
                                      client=INTERNET_CLIENT))


def test_a_script_relaying_through_port_25_is_held_by_the_send_limit(running):
    check_limit_holds_the_excess(running, lambda raw: running.exim.submit(
        raw, ["carol@example.org"], "alice@example.test"), account="script")


def test_a_local_recipient_does_not_let_the_remote_ones_skip_the_outgoing_check(running):
    """Exim routes each recipient: the remote one goes to the outgoing listener, the
    local one (a relay host writing to a local mailbox) to the incoming one."""
    running.exim.submit(message("mixed"), ["bob@example.test", "carol@example.org"],
                        "alice@example.test")
    sent = running.internet.wait_for(1, timeout=20)
    kept = running.mailbox.wait_for(1, timeout=20)
    assert directions(running, sent) == [("mixed", "outgoing")]
    assert directions(running, kept) == [("mixed", "incoming")]
    assert [m.rcpt_tos for m in sent + kept] == [["carol@example.org"], ["bob@example.test"]]


def test_status_fails_while_exims_daemon_is_down(stack):
    assert ie_config(stack.config, "enable", "--mta", "exim").returncode == 0
    stack.exim.start()
    stack.exim.wait_listening(stack.exim.reinject_port)
    stack.ie.start()
    stack.exim.stop()  # the daemon is killed; its pid file stays behind
    done = ie_config(stack.config, "status")
    assert done.returncode == 1, done.stdout
    assert "FAIL MTA running: exim is not running" in done.stdout, done.stdout
    assert (f"FAIL reinjection reinject: 127.0.0.1:{stack.exim.reinject_port} not answering"
            in done.stdout)
    assert "OK   listener outgoing_listen" in done.stdout  # ie itself is fine
    stack.exim.start()
    stack.exim.wait_listening(stack.exim.reinject_port)
    code, items = status_items(stack.config)
    assert code == 0, items
    assert items["MTA running"] and items["reinjection reinject"]
