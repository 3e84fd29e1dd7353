"""The reply rule: every failure leaves the message with the MTA (4xx), nothing is reported
delivered that was not, and a permanent refusal is passed on only when the downstream
gave it.  The downstream is a real aiosmtpd server with injected faults."""

from __future__ import annotations

import logging
import smtplib
import socket
import threading

import pytest

from ie_core import Action, Finding, Stage, hookimpl
from tests.fixtures.sink import free_port

MSG = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: t\r\n\r\nbody\r\n"


def send(port: int, rcpts: list[str], msg: bytes = MSG, sender: str = "a@example.com"):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        return s.sendmail(sender, rcpts, msg)


def test_downstream_tempfail_is_passed_on_as_4xx(run_daemon, sink):
    sink.handler.mode = "tempfail"
    d = run_daemon()
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(d.outgoing_port, ["b@example.org"])
    assert err.value.smtp_code == 451
    assert sink.messages == []


def test_downstream_permanent_refusal_is_passed_on(run_daemon, sink):
    sink.handler.mode = "reject"
    d = run_daemon()
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(d.outgoing_port, ["b@example.org"])
    assert err.value.smtp_code == 554


def test_per_recipient_refusals_are_mirrored(run_daemon, sink):
    sink.handler.refuse = {"gone@example.org"}
    sink.handler.defer = {"busy@example.org"}
    d = run_daemon()
    refused = send(d.outgoing_port, ["ok@example.org", "gone@example.org", "busy@example.org"])
    assert refused["gone@example.org"][0] == 550  # the MTA bounces exactly this one
    assert refused["busy@example.org"][0] == 450  # ...defers exactly this one
    assert "ok@example.org" not in refused
    [got] = sink.wait_for(1)
    assert got.rcpt_tos == ["ok@example.org"]


def test_hanging_downstream_times_out_with_451(run_daemon, sink):
    sink.handler.mode = "hang"
    d = run_daemon(**{"filter.reinject_timeout": 1.0})
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(d.outgoing_port, ["b@example.org"])
    assert err.value.smtp_code == 451
    assert err.value.smtp_error == b"4.4.2 Reinjection MTA timed out, try again later"


def test_downstream_down_refuses_recipients_with_451(run_daemon):
    d = run_daemon(**{"filter.reinject": f"127.0.0.1:{free_port()}"})
    with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        send(d.outgoing_port, ["b@example.org"])
    [(code, text)] = err.value.recipients.values()
    assert code == 451 and b"4.4.1" in text


@pytest.fixture
def dead_database():
    """A TCP port that accepts connections and closes them: PostgreSQL is unusable."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def loop() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                pass

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield f"postgresql+psycopg://ie@127.0.0.1:{srv.getsockname()[1]}/ie?connect_timeout=2"
    stop.set()
    t.join()
    srv.close()


def test_database_unavailable_gives_451(run_daemon, sink, dead_database):
    d = run_daemon(db_url=dead_database, migrated=False)
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(d.outgoing_port, ["b@example.org"])
    assert err.value.smtp_code == 451
    assert sink.messages == []


class Exploding:
    @hookimpl
    def ie_stages(self, app):
        def boom(ctx):
            raise ValueError("stage bug")
        return [Stage(name="exploding", run=boom)]


def test_a_stage_that_raises_gives_451_and_names_the_stage(run_daemon, sink, caplog):
    caplog.set_level(logging.ERROR, logger="ie.pipeline")
    d = run_daemon(plugins=[("exploding", Exploding())])
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(d.outgoing_port, ["b@example.org"])
    assert err.value.smtp_code == 451
    assert b"Error" not in err.value.smtp_error  # not aiosmtpd's "500 Error: (ValueError)"
    assert sink.messages == []
    assert any("stage=exploding" in r.getMessage() for r in caplog.records)


class Holder:
    """Holds everything, but its storage fails: the MTA must keep the message."""

    @hookimpl
    def ie_stages(self, app):
        return [Stage(name="holdall", run=lambda ctx: Finding(
            stage="holdall", reason="spam", action=Action.QUARANTINE))]

    @hookimpl
    def ie_hold(self, app, ctx, verdict):
        raise OSError(28, "No space left on device")


def test_hold_failure_gives_451_and_nothing_is_delivered(run_daemon, sink):
    d = run_daemon(plugins=[("holder", Holder())], **{"plugins.disabled": ["quarantine"]})
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(d.outgoing_port, ["b@example.org"])
    assert err.value.smtp_code == 451
    assert sink.messages == []
