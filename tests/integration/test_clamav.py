"""Antivirus through the real daemon and a real clamd (issue 18): incoming EICAR refused
554, an outgoing file matching the fixture's own signature held as ``virus``, clean mail
delivered, and every way clamd can fail to scan answered without a silent pass."""

from __future__ import annotations

import logging
import smtplib
import socket
import threading
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from ie_core.db.models import Account, DomainMap
from ie_plugins.clamav import ie_status
from ie_plugins.quarantine.models import HeldMessage
from tests.fixtures.clamd import (
    CLAMD,
    EICAR,
    EICAR_SIGNATURE,
    PAYLOAD,
    PAYLOAD_SIGNATURE,
    STREAM_MAX,
    Clamd,
    start_clamd,
)
from tests.fixtures.sink import free_port

pytestmark = pytest.mark.skipif(not Path(CLAMD).exists(),
                                reason=f"{CLAMD} missing (Debian's clamav-daemon)")
ONLY_CLAMAV = {"pipeline.outgoing": ["clamav"], "pipeline.incoming": ["clamav"],
               "clamav.enabled": True, "clamav.timeout": 5.0}


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    server = start_clamd(tmp_path_factory.mktemp("clamd"))
    yield server
    server.stop()


def mail(attachment: bytes | None, name: str = "file.bin") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.com", "bob@example.org", "files"
    msg.set_content("see attached\n")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream",
                           filename=name)
    return msg.as_bytes(policy=policy.SMTP)


def send(port: int, raw: bytes) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo()
        s.mail("alice@example.com")
        s.rcpt("bob@example.org")
        code, reply = s.data(raw)
    return code, reply.decode()


def held(app) -> list[HeldMessage]:
    with app.db.session() as s:
        return list(s.scalars(select(HeldMessage)).all())


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_eicar_refused_signature_held_clean_delivered(run_daemon, sink, db_url, clamd,
                                                       transport, caplog):
    caplog.set_level(logging.INFO, logger="ie.clamav")
    address = clamd.unix_address if transport == "unix" else clamd.tcp_address
    d = run_daemon(db_url=db_url, **ONLY_CLAMAV, **{"clamav.address": address})

    code, reply = send(d.incoming_port, mail(EICAR, "eicar.com"))
    assert (code, reply) == (554, f"5.7.1 Virus found: {EICAR_SIGNATURE}")
    code, reply = send(d.outgoing_port, mail(PAYLOAD))
    assert code == 250 and "held as " in reply, reply
    [row] = held(d.app)
    assert (row.reasons, row.direction, row.account) == (["virus"], "outgoing", "root")
    assert sink.messages == []
    assert f"signature={PAYLOAD_SIGNATURE}" in caplog.text

    for port in (d.outgoing_port, d.incoming_port):
        assert send(port, mail(b"harmless bytes\n"))[0] == 250
    assert len(sink.wait_for(2)) == 2
    # EICAR encoded in base64 inside MIME is found too (clamd decodes mail)
    code, _ = send(d.outgoing_port, mail(EICAR))
    assert code == 250 and len(held(d.app)) == 2


def test_incoming_hold_goes_to_the_servers_quarantine(run_daemon, sink, db_url, clamd):
    """An incoming virus held (not refused) is charged to root, never to the account the
    outside sender's address maps to."""
    d = run_daemon(db_url=db_url, **ONLY_CLAMAV, **{"clamav.address": clamd.unix_address,
                                                   "clamav.incoming_action": "hold"})
    with d.app.db.session() as s:  # the sender's domain is a hosted account's
        s.add(Account(name="victim", created_at=d.app.clock.now()))
        s.flush()
        s.add(DomainMap(domain="example.com", account="victim"))
    code, reply = send(d.incoming_port, mail(EICAR))
    assert code == 250 and "held as " in reply, reply
    [row] = held(d.app)
    assert (row.reasons, row.direction, row.account) == (["virus"], "incoming", "root")
    assert sink.messages == []


def test_clamd_down_tempfails_and_loses_nothing(run_daemon, sink, tmp_path):
    gone = f"unix:{tmp_path / 'no-clamd.sock'}"
    d = run_daemon(**ONLY_CLAMAV, **{"clamav.address": gone})
    for port in (d.outgoing_port, d.incoming_port):
        code, reply = send(port, mail(b"clean\n"))
        assert (code, reply) == (451, "4.7.1 Virus scanner unavailable, try again later")
    assert sink.messages == [] and held(d.app) == []
    [item] = ie_status(d.app)
    assert not item.ok and item.required and "no-clamd.sock" in item.detail

    accepting = run_daemon(**ONLY_CLAMAV, **{"clamav.address": gone,
                                             "clamav.incoming_unavailable": "accept"})
    assert send(accepting.incoming_port, mail(b"clean\n"))[0] == 250  # the admin's choice
    assert send(accepting.outgoing_port, mail(b"clean\n"))[0] == 451  # outgoing never
    assert len(sink.wait_for(1)) == 1


def test_a_hanging_clamd_is_a_tempfail_after_the_timeout(run_daemon, sink):
    """A server that accepts the connection and never answers (fault injection)."""
    listener = socket.create_server(("127.0.0.1", free_port()))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:  # closed at the end of the test
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        d = run_daemon(**{**ONLY_CLAMAV, "clamav.timeout": 1.0,
                          "clamav.address": f"127.0.0.1:{port}"})
        code, reply = send(d.outgoing_port, mail(b"clean\n"))
        assert (code, reply) == (451, "4.7.1 Virus scanner unavailable, try again later")
        assert sink.messages == [] and accepted
    finally:
        stop.set()
        listener.close()
        for conn in accepted:
            conn.close()


def test_too_large_to_scan_is_held_or_tempfailed_never_passed_silently(run_daemon, sink,
                                                                       clamd):
    big = mail(b"x" * (STREAM_MAX + 200_000))
    # over clamd's own StreamMaxLength: clamd refuses the stream
    d = run_daemon(**ONLY_CLAMAV, **{"clamav.address": clamd.unix_address,
                                     "clamav.max_stream": 4 * STREAM_MAX})
    code, reply = send(d.outgoing_port, big)
    assert code == 250 and "held as " in reply, reply
    assert [r.reasons for r in held(d.app)] == [["unscanned"]]
    # over ie's own clamav.max_stream: not even sent to clamd
    t = run_daemon(**ONLY_CLAMAV, **{"clamav.address": clamd.unix_address,
                                     "clamav.max_stream": 1000, "clamav.too_large": "tempfail"})
    code, reply = send(t.incoming_port, mail(b"y" * 2000))
    assert (code, reply) == (451, "4.7.1 Message too large for the virus scanner, try again "
                                  "later")
    assert sink.messages == []


def test_status_names_clamds_version(make_app, clamd):
    app = make_app(**{"clamav.enabled": True, "clamav.address": clamd.tcp_address})
    [item] = ie_status(app)
    assert item.ok and item.detail.startswith(f"clamd at {clamd.tcp_address}: ClamAV ")
    assert ie_status(make_app()) == []  # off by default: no item, no stage



@pytest.mark.mta
def test_eicar_refused_through_real_postfix_and_dovecot(run_daemon, tmp_path, clamd):
    """Internet -> Postfix -> ie-filterd (clamd) -> Postfix -> Dovecot LMTP: the clean
    message reaches the INBOX, the EICAR one is bounced by Postfix with ie's 554."""
    from tests.integration.test_bands_e2e import wait_log
    from tests.integration.test_incoming_e2e import ALICE, incoming_stack

    db_url = f"sqlite:///{tmp_path / 'ie.db'}"
    with incoming_stack(run_daemon, tmp_path, db_url, [ALICE], ["example.test"],
                        sections=f'[clamav]\nenabled = true\n'
                                 f'address = "{clamd.unix_address}"\n') as stack:
        stack.config_cmd("enable-incoming")
        infected = mail(EICAR, "eicar.com").replace(b"Subject: files", b"Subject: infected")
        clean = mail(b"harmless\n").replace(b"Subject: files", b"Subject: clean")
        stack.send(infected.replace(b"bob@example.org", ALICE.encode()), ALICE)
        stack.send(clean.replace(b"bob@example.org", ALICE.encode()), ALICE)
        stack.wait(ALICE, "INBOX", "clean")
        bounced = wait_log(stack, f"554 5.7.1 Virus found: {EICAR_SIGNATURE}")
        assert "status=bounced" in bounced
        assert stack.dovecot.subjects(ALICE, "INBOX") == ["clean"]


@pytest.mark.mta
def test_a_signed_file_submitted_through_real_postfix_is_held(tmp_path, clamd):
    """A logged-in user submits through real Postfix (wired by ie-config enable): the
    file matching the fixture's own signature is held as ``virus``; the clean message
    reaches the Internet side."""
    from tests.fixtures.mta import held_items, ie_config, wait_until
    from tests.integration.test_mta_postfix import ALICE, new_stack

    with new_stack(tmp_path, {"clamav.enabled": True,
                              "clamav.address": clamd.unix_address}) as stack:
        assert ie_config(stack.config, "enable", "--mta", "postfix").returncode == 0
        stack.postfix.start()
        stack.postfix.wait_listening(stack.postfix.reinject_port)
        stack.ie.start()
        for raw in (mail(PAYLOAD).replace(b"Subject: files", b"Subject: signed"),
                    mail(b"harmless\n").replace(b"Subject: files", b"Subject: clean")):
            stack.postfix.submit(raw, ["carol@example.org"], "alice@example.test",
                                 login=ALICE)
        assert wait_until(lambda: len(stack.log_rows()) == 2)
        [got] = stack.internet.wait_for(1, timeout=20)
        assert b"Subject: clean" in got.data
        [item] = held_items(stack.config)
        assert (item["subject"], item["reasons"]) == ("signed", ["virus"])


@pytest.mark.parametrize("address", ["127.0.0.1:²", "127.0.0.1:" + "9" * 5000, "nohost",
                                     "127.0.0.1:0"])
def test_a_bad_clamd_address_is_one_configuration_error(make_app, address):
    from ie_core import ConfigError
    from ie_plugins.clamav import Settings

    with pytest.raises(ConfigError, match="clamav.address: clamd address must be"):
        Settings.from_app(make_app(**{"clamav.address": address}))
