"""ie-config enable/disable on a real, private Postfix, and mail through it end to end.

Postfix relays to an aiosmtpd sink standing for the Internet (``relayhost``) and mail for
example.test to a second sink standing for the mailboxes; SASL comes from a private
Dovecot; ie-filterd runs as a subprocess.
"""

from __future__ import annotations

import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, delete, select
from sqlalchemy.orm import Session

from ie_core.db.models import MessageLog
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.dovecot import Dovecot, require_dovecot
from tests.fixtures.mta import (
    check_each_path_is_checked_as_it_should,
    check_gtube_and_exe_are_held,
    check_limit_holds_the_excess,
    filter_id,
    ie_config,
    message,
    quiet_plugins,
    status_items,
    wait_rows,
)
from tests.fixtures.postfix import LOCAL_CLIENT, PrivatePostfix, require_postfix
from tests.fixtures.sink import Sink, free_port

pytestmark = pytest.mark.mta
ALICE = ("alice@example.test", "secret")


class Stack:
    def __init__(self, tmp: Path, settings: dict[str, object] | None = None) -> None:
        require_postfix()
        require_dovecot()
        self.internet, self.mailbox = Sink(), Sink()
        self.dovecot = Dovecot(["alice@example.test", "bob@example.test"])
        self.postfix = PrivatePostfix(self.internet.port, self.mailbox.port,
                                      self.dovecot.conf_d)
        self.ie = DaemonProcess(tmp, {**self.postfix.ie_settings(), **quiet_plugins(tmp),
                                      **(settings or {})})
        self.config = self.ie.config
        self.internet.start()
        self.mailbox.start()
        self.dovecot.start()

    def close(self) -> None:
        self.ie.stop()
        self.postfix.cleanup()
        self.dovecot.stop()
        self.internet.stop()
        self.mailbox.stop()

    def engine(self) -> Engine:
        return create_engine(f"sqlite:///{self.config.parent / 'ie-data' / 'ie.db'}")

    def log_rows(self) -> list[MessageLog]:
        engine = self.engine()
        try:
            with Session(engine) as s:
                return list(s.scalars(select(MessageLog).order_by(MessageLog.received_at)))
        finally:
            engine.dispose()

    def reset(self) -> None:
        """Forget earlier tests' mail (sinks and message log)."""
        for sink in (self.internet, self.mailbox):
            with sink.handler.lock:
                sink.handler.messages.clear()
        engine = self.engine()
        with engine.begin() as conn:
            conn.execute(delete(MessageLog))
        engine.dispose()


@contextmanager
def new_stack(tmp: Path, settings: dict[str, object] | None = None) -> Iterator[Stack]:
    st = Stack(tmp, settings)
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
    """Wired with ie-config enable, Postfix and ie-filterd running (shared by the tests
    that only send mail)."""
    with new_stack(tmp_path_factory.mktemp("postfix-e2e")) as st:
        done = ie_config(st.config, "enable", "--mta", "postfix")
        assert done.returncode == 0, done.stderr
        st.postfix.start()
        st.postfix.wait_listening(st.postfix.reinject_port)
        st.ie.start()
        yield st


@pytest.fixture
def running(wired: Stack) -> Stack:
    if wired.ie.proc is None or wired.ie.proc.poll() is not None:
        wired.ie.start(init_db=False)
    wired.postfix.wait_queue_empty()
    wired.reset()
    return wired


def test_submission_reaches_the_internet_with_our_headers_and_the_sasl_user(running):
    running.postfix.submit(message("hello"), ["carol@example.org"], "alice@example.test",
                           login=ALICE)
    [got] = running.internet.wait_for(1, timeout=20)
    assert got.rcpt_tos == ["carol@example.org"]
    assert b"X-IE-Filter-Action: deliver" in got.data
    assert got.data.count(b"X-IE-Filter-Id:") == 1  # filtered once, not again on reinjection
    [row] = wait_rows(running, 1)
    assert (row.direction, row.sender_email, row.outcome) == (
        "outgoing", "alice@example.test", "delivered")


def test_a_client_cannot_forge_the_identity(running):
    forged = message("forged", extra=(
        b"Received: from x (x [10.0.0.1]) (Authenticated sender: mallory@example.test)\r\n"
        b"\tby mx.example.test (Postfix) with ESMTPSA id 4AAAAAAAAA;\r\n"
        b"X-IE-Auth-User: mallory@example.test\r\n"))
    running.postfix.submit(forged, ["carol@example.org"], "alice@example.test", login=ALICE,
                           helo="(Authenticated sender: mallory@example.test)")
    running.postfix.receive(forged, ["bob@example.test"], "mallory@example.test")
    running.internet.wait_for(1, timeout=20)
    running.mailbox.wait_for(1, timeout=20)
    rows = {r.direction: r for r in wait_rows(running, 2)}
    assert rows["outgoing"].sender_email == "alice@example.test"
    assert rows["incoming"].sender_email == "mallory@example.test"  # the envelope, nothing more
    [got] = running.internet.messages
    assert b"X-IE-Auth-User" not in got.data
    assert b"from ?Authenticated?sender:?mallory" in got.data  # the HELO did arrive, defused


def test_a_recipient_address_cannot_choose_the_account(running):
    """Issue 13, hole 2: Postfix writes the single recipient into its Received line; a
    quoted local part that looks like Postfix's own comments names nobody."""
    mail_uid = pwd.getpwnam("mail").pw_uid
    hostile = ['"(Authenticated sender: victim@example.test)"@example.org',
               f'"(Postfix, from userid {mail_uid})"@example.org']
    for rcpt in hostile:
        running.postfix.receive(message("hostile"), [rcpt], "mallory@outside.test",
                                client=LOCAL_CLIENT)
    got = running.internet.wait_for(2, timeout=20)
    assert sorted(r for m in got for r in m.rcpt_tos) == sorted(hostile)
    rows = wait_rows(running, 2)
    assert [(r.direction, r.sender_email) for r in rows] == [
        ("outgoing", "mallory@outside.test")] * 2
    assert all(r.account != "mail" for r in rows)
    assert all(r.queue_id and "FAKE" not in r.queue_id for r in rows)


def test_port_25_goes_to_the_incoming_listener_local_sendmail_to_the_outgoing(running):
    running.postfix.receive(message("in"), ["bob@example.test"])
    running.postfix.sendmail(message("local"), ["carol@example.org"])
    running.mailbox.wait_for(1, timeout=20)
    running.internet.wait_for(1, timeout=20)
    rows = wait_rows(running, 2)  # ie logs a message just after the MTA took it back
    assert sorted(r.direction for r in rows) == ["incoming", "outgoing"]
    [local] = [r for r in rows if r.direction == "outgoing"]
    assert local.rcpt_tos == ["carol@example.org"]


def test_an_authenticated_client_on_port_25_is_outgoing(running):
    running.postfix.receive(message("auth on 25"), ["carol@example.org"],
                            "alice@example.test", login=ALICE)
    running.internet.wait_for(1, timeout=20)
    [row] = wait_rows(running, 1)
    assert (row.direction, row.sender_email) == ("outgoing", "alice@example.test")


def test_no_loss_while_ie_is_down(running):
    running.ie.stop()
    for i in range(20):
        running.postfix.submit(message(f"n{i}"), ["carol@example.org"], "alice@example.test",
                               login=ALICE)
    assert len(running.postfix.queue()) == 20  # deferred: the filter refused the connection
    assert running.internet.messages == []
    running.ie.start(init_db=False)
    running.postfix.flush()
    running.postfix.wait_queue_empty()
    got = running.internet.wait_for(20, timeout=30)
    subjects = sorted(m.data.split(b"Subject: ")[1].split(b"\r\n")[0] for m in got)
    assert subjects == sorted(f"n{i}".encode() for i in range(20))  # all, none twice


def test_enable_twice_then_disable_is_byte_identical(stack):
    original = stack.postfix.snapshot()
    stack.postfix.start()
    first = ie_config(stack.config, "enable", "--mta", "postfix", "--json")
    assert first.returncode == 0, first.stderr
    wired = stack.postfix.snapshot()
    assert wired != original
    stack.postfix.wait_listening(stack.postfix.reinject_port)  # reloaded, not restarted
    second = ie_config(stack.config, "enable", "--json")
    assert second.returncode == 0, second.stderr
    assert '"changed": []' in second.stdout
    assert stack.postfix.snapshot() == wired
    off = ie_config(stack.config, "disable")
    assert off.returncode == 0, off.stderr
    assert stack.postfix.snapshot() == original  # ie's cidr table is gone too
    backups = (stack.config.parent / "ie-data" / "mta-backups" / "postfix").iterdir()
    assert sorted(b.read_bytes() for b in backups if b.name.startswith("master.cf.")) == sorted(
        [original["master.cf"], wired["master.cf"]])


def test_a_broken_template_rolls_back_with_postfix_message(stack, tmp_path):
    original = stack.postfix.snapshot()
    templates = tmp_path / "templates"
    templates.mkdir()
    good = Path(__import__("ie_plugins.mta", fromlist=["x"]).__file__).parent / "templates"
    text = (good / "postfix_master.cf.j2").read_text()
    (templates / "postfix_master.cf.j2").write_text(
        text.replace("unix  -       -       n", "unix  -       -       maybe", 1))
    stack.config.write_text(stack.config.read_text().replace(
        "[mta]\n", f'[mta]\ntemplate_dir = "{templates}"\n'))
    done = ie_config(stack.config, "enable", "--mta", "postfix")
    assert done.returncode == 1
    assert "rolled back" in done.stderr and 'invalid chroot field "maybe"' in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert stack.postfix.snapshot() == original


def test_status_names_each_failure(stack):
    def status() -> tuple[int, dict[str, bool]]:
        return status_items(stack.config)

    assert ie_config(stack.config, "db", "upgrade").returncode == 0
    code, items = status()
    assert code == 1 and not items["MTA wired in"] and not items["listener outgoing_listen"]
    assert ie_config(stack.config, "enable", "--mta", "postfix").returncode == 0
    stack.postfix.start()
    stack.ie.start()
    code, items = status()
    bad = [name for name, ok in items.items() if not ok]
    assert code == 0, bad
    stack.ie.stop()
    code, items = status()
    assert code == 1 and not items["listener outgoing_listen"] and items["MTA wired in"]
    assert "FAIL listener outgoing_listen" in ie_config(stack.config, "status").stdout
    dead_db = stack.config.parent / "dead-db.toml"
    dead_db.write_text(stack.config.read_text().replace(
        "[ie]\n", '[ie]\ndatabase_url = "postgresql+psycopg://postgres@127.0.0.1:1/ie"\n'))
    done = ie_config(dead_db, "status")
    assert done.returncode == 1, done.stderr
    assert "FAIL database:" in done.stdout and "OK   MTA wired in" in done.stdout
    assert ie_config(stack.config, "disable").returncode == 0
    code, items = status()
    assert code == 1 and not items["MTA wired in"]


def test_gtube_and_exe_are_held_and_a_release_is_not_filtered_again(running):
    """Needs the classify, winexec and quarantine plugins."""
    check_gtube_and_exe_are_held(running, lambda raw: running.postfix.submit(
        raw, ["carol@example.org"], "alice@example.test", login=ALICE))


def test_an_account_over_its_limit_is_held_and_a_release_is_not_held_again(running):
    """Needs the ratelimit, accounts and quarantine plugins."""
    check_limit_holds_the_excess(running, lambda raw: running.postfix.submit(
        raw, ["carol@example.org"], "alice@example.test", login=ALICE))


def test_every_way_a_local_user_sends_is_outgoing_internet_mail_is_incoming(running):
    """SASL submission, a script relaying through port 25 from mynetworks without logging
    in (PHPMailer's 'localhost:25'), and sendmail (pickup) all reach ie's outgoing
    listener; an Internet client writing to a local mailbox reaches the incoming one."""
    postfix = running.postfix
    check_each_path_is_checked_as_it_should(running, {
        "sasl-submission": lambda raw, rcpts: postfix.submit(
            raw, rcpts, "alice@example.test", login=ALICE),
        "mynetworks-on-port-25": lambda raw, rcpts: postfix.receive(
            raw, rcpts, "alice@example.test", client=LOCAL_CLIENT),
        "sendmail": postfix.sendmail,
    }, lambda raw, rcpts: postfix.receive(raw, rcpts))


def test_a_script_relaying_through_port_25_is_held_by_the_send_limit(running):
    """Issue 13: five messages from 127.0.0.1 to remote recipients, account limit 3."""
    check_limit_holds_the_excess(running, lambda raw: running.postfix.receive(
        raw, ["carol@example.org"], "alice@example.test", client=LOCAL_CLIENT),
        account="script")


def test_a_local_recipient_does_not_let_the_remote_ones_skip_the_outgoing_check(running):
    """Postfix filters a whole message through one listener: mail from a client that may
    relay goes to the outgoing one with all its recipients, local ones included."""
    running.postfix.receive(message("mixed"), ["bob@example.test", "carol@example.org"],
                            "alice@example.test", client=LOCAL_CLIENT)
    [out] = running.internet.wait_for(1, timeout=20)
    [local] = running.mailbox.wait_for(1, timeout=20)
    [row] = wait_rows(running, 1)
    assert (row.direction, sorted(row.rcpt_tos)) == (
        "outgoing", ["bob@example.test", "carol@example.org"])
    assert filter_id(out.data) == filter_id(local.data) == row.id


def test_status_fails_while_postfix_cannot_take_mail_back(tmp_path):
    incoming = free_port()
    with new_stack(tmp_path, {"filter.incoming_reinject": f"127.0.0.1:{incoming}"}) as st:
        assert ie_config(st.config, "db", "upgrade").returncode == 0
        assert ie_config(st.config, "enable", "--mta", "postfix").returncode == 0
        st.ie.start()  # Postfix is wired in but stopped
        done = ie_config(st.config, "status")
        assert done.returncode == 1, done.stdout
        assert "FAIL MTA running: postfix is not running" in done.stdout, done.stdout
        for key, port in (("reinject", st.postfix.reinject_port),
                          ("incoming_reinject", incoming)):
            assert f"FAIL reinjection {key}: 127.0.0.1:{port} not answering" in done.stdout
        assert "OK   listener outgoing_listen" in done.stdout  # ie itself is fine
        st.postfix.start()
        st.postfix.wait_listening(st.postfix.reinject_port, incoming)
        code, items = status_items(st.config)
        assert code == 0, items
        assert items["MTA running"] and items["reinjection reinject"]
        assert items["reinjection incoming_reinject"]
        st.postfix.stop()
        assert status_items(st.config) == (1, {**items, "MTA running": False,
                                               "reinjection reinject": False,
                                               "reinjection incoming_reinject": False})


def test_disable_sends_the_mail_that_waited_for_ie_on_its_way(stack):
    """Postfix keeps the content filter in each queued message: after disable a message
    deferred for ie's transport would stay deferred; disable requeues it (issue 16)."""
    assert ie_config(stack.config, "enable", "--mta", "postfix").returncode == 0
    stack.postfix.start()
    stack.postfix.wait_listening(stack.postfix.reinject_port)
    for i in range(3):  # ie-filterd is not running: each is deferred for ie_filter
        stack.postfix.submit(message(f"w{i}"), ["carol@example.org"], "alice@example.test",
                             login=ALICE)
    assert len(stack.postfix.queue()) == 3 and stack.internet.messages == []
    off = ie_config(stack.config, "disable")
    assert off.returncode == 0, off.stderr
    assert "requeued 3 message(s) that were waiting for ie" in off.stdout
    got = stack.internet.wait_for(3, timeout=30)
    assert sorted(m.data.split(b"Subject: ")[1].split(b"\r\n")[0] for m in got) == [
        b"w0", b"w1", b"w2"]
    stack.postfix.wait_queue_empty()


def assert_one_submission_goes_through_ie_once(stack: Stack) -> None:
    stack.postfix.start()
    stack.postfix.wait_listening(stack.postfix.reinject_port)
    stack.ie.start()
    stack.postfix.submit(message("hand"), ["carol@example.org"], "alice@example.test",
                         login=ALICE)
    [got] = stack.internet.wait_for(1, timeout=30)
    assert got.data.count(b"X-IE-Filter-Id:") == 1


def test_enable_takes_over_ies_own_hand_wiring(stack):
    """The wiring the README once showed (main.cf content_filter to ie, an ie_out
    transport, a hand-written reinjection listener) is ie's own: enable replaces it
    instead of refusing to chain a content filter (issue 16)."""
    conf = stack.postfix.conf
    listen = f"127.0.0.1:{stack.ie.outgoing_port}"
    reinject = stack.postfix.ie_settings()["filter.reinject"]
    main_cf, master_cf = conf / "main.cf", conf / "master.cf"
    main_cf.write_text(main_cf.read_text() + f"content_filter = ie_out:[{listen.split(':')[0]}]"
                       f":{listen.split(':')[1]}\nsmtpd_sasl_authenticated_header = yes\n")
    master_cf.write_text(master_cf.read_text()
                         + "ie_out    unix  -       -       n       -       10      smtp\n"
                         "  -o smtp_send_xforward_command=yes\n"
                         f"{reinject} inet n  -       n       -       10      smtpd\n"
                         "  -o content_filter=\n  -o mynetworks=127.0.0.0/8\n")
    done = ie_config(stack.config, "enable", "--mta", "postfix")
    assert done.returncode == 0, done.stderr
    assert "content_filter" not in main_cf.read_text()
    assert "smtpd_sasl_authenticated_header = yes" in main_cf.read_text()  # the rest stays
    wired = master_cf.read_text()
    assert "ie_out" not in wired and wired.count(f"{reinject} inet") == 1
    assert_one_submission_goes_through_ie_once(stack)


def test_another_content_filter_is_still_refused(stack):
    main_cf = stack.postfix.conf / "main.cf"
    main_cf.write_text(main_cf.read_text() + "content_filter = amavis:[127.0.0.1]:10024\n")
    done = ie_config(stack.config, "enable", "--mta", "postfix")
    assert done.returncode != 0
    assert "main.cf already sets content_filter = amavis:[127.0.0.1]:10024" in done.stderr


def readme_hand_wiring(master_cf: str, stack: Stack) -> str:
    """master.cf wired by hand as the README shows: the three options on each service,
    then the ie_filter transport and the reinjection listener."""
    listener = {f"127.0.0.1:{stack.postfix.smtp_port}": stack.ie.incoming_port,
                f"127.0.0.1:{stack.postfix.submission_port}": stack.ie.outgoing_port,
                "pickup": stack.ie.outgoing_port}
    out = []
    for line in master_cf.splitlines(keepends=True):
        out.append(line)
        name = line.split()[0] if line[:1] not in ("", "#", " ", "\t") else ""
        if name in listener:
            out.append(f"  -o content_filter=ie_filter:[127.0.0.1]:{listener[name]}\n"
                       "  -o receive_override_options=no_address_mappings\n"
                       "  -o smtpd_sasl_authenticated_header=yes\n")
    reinject = stack.postfix.ie_settings()["filter.reinject"]
    out.append("ie_filter unix  -       -       n       -       10      smtp\n"
               "  -o smtp_send_xforward_command=yes\n"
               "  -o disable_mime_output_conversion=yes\n"
               f"{reinject} inet  n       -       n       -       -       smtpd\n"
               "  -o content_filter=\n"
               "  -o receive_override_options=no_unknown_recipient_checks,"
               "no_header_body_checks,no_milters\n"
               "  -o smtpd_recipient_restrictions=permit_mynetworks,reject\n"
               "  -o mynetworks=127.0.0.0/8\n")
    return "".join(out)


def test_enable_takes_over_the_readmes_hand_wiring(stack):
    """The README's by-hand wiring (content_filter and its options on each master.cf
    service, an ie_filter transport, a reinjection listener) is ie's own: enable replaces
    it instead of refusing to chain a content filter, and disable leaves master.cf as it
    was before the hand wiring (issue 16)."""
    master_cf = stack.postfix.conf / "master.cf"
    original = master_cf.read_text()
    master_cf.write_text(readme_hand_wiring(original, stack))
    assert stack.postfix.postfix("check").returncode == 0
    done = ie_config(stack.config, "enable", "--mta", "postfix")
    assert done.returncode == 0, done.stderr
    wired = master_cf.read_text()
    assert wired.count("ie_filter unix") == 1
    assert wired.count(f"{stack.postfix.ie_settings()['filter.reinject']} inet") == 1
    assert wired.count("-o content_filter=ie_filter:") == 3  # one per service, ie's own
    assert_one_submission_goes_through_ie_once(stack)
    off = ie_config(stack.config, "disable", "--mta", "postfix")
    assert off.returncode == 0, off.stderr
    assert master_cf.read_text() == original
