"""The rspamd backend against a real rspamd (faults: a closed port and fake servers), and
rspamd as the classify stage's backend through the real filter daemon and quarantine."""

from __future__ import annotations

import email
import re
import smtplib
import time

import pytest

from ie_core.classifier import ClassifierUnavailable, Envelope
from ie_plugins.rspamd import RspamdClassifier
from tests.fixtures.classifier_messages import ONLY_CLASSIFY, gtube, ham, send, spam
from tests.fixtures.netdaemon import ScriptedServer
from tests.fixtures.rspamd import RspamdDaemon, rspamd_daemon  # noqa: F401 (fixture)
from tests.fixtures.sink import free_port


@pytest.fixture
def backend(rspamd_daemon: RspamdDaemon) -> RspamdClassifier:  # noqa: F811
    return RspamdClassifier(rspamd_daemon.address, rspamd_daemon.controller,
                            password=rspamd_daemon.password, timeout=5.0)


def _learns(daemon: RspamdDaemon) -> tuple[int, int]:
    """What rspamd's Bayes holds: (spam, ham) messages, from its Redis."""
    return (int(daemon.redis("hget", "RS", "learns_spam") or 0),
            int(daemon.redis("hget", "RS", "learns_ham") or 0))


def test_gtube_is_spam(backend: RspamdClassifier) -> None:
    result = backend.classify(gtube())
    assert result.label == "spam"
    assert result.score >= 15
    assert result.extra["action"] == "reject"
    assert "GTUBE" in result.detail


def test_ham_scores_low(backend: RspamdClassifier) -> None:
    result = backend.classify(ham())
    assert result.label == "ham"
    assert result.score < 4
    assert result.extra["action"] == "no action"


def test_envelope_reaches_rspamd(backend: RspamdClassifier) -> None:
    raw = ham()
    assert "FORGED_SENDER" not in backend.classify(raw).extra["symbols"]
    result = backend.classify(raw, Envelope("mallory@evil.test", ("bob@example.org",),
                                            "192.0.2.7", "4XyZ1abc", "alice"))
    assert "FORGED_SENDER" in result.extra["symbols"]  # envelope sender != From header


def test_null_sender_is_sent_as_empty_path(backend: RspamdClassifier) -> None:
    result = backend.classify(ham(), Envelope("", ("bob@example.org",)))
    assert result.label == "ham"
    assert "FORGED_SENDER" not in result.extra["symbols"]


def test_check_pings_rspamd(backend: RspamdClassifier,
                            rspamd_daemon: RspamdDaemon) -> None:  # noqa: F811
    assert backend.check(3.0) == rspamd_daemon.address
    no_controller = RspamdClassifier(rspamd_daemon.address, f"127.0.0.1:{free_port()}")
    assert "learning will fail" in no_controller.check(3.0)  # scoring still works
    closed = f"127.0.0.1:{free_port()}"
    with pytest.raises(ClassifierUnavailable, match=closed):
        RspamdClassifier(closed, rspamd_daemon.controller).check(3.0)


def test_check_of_a_hung_rspamd_gives_up_within_its_timeout() -> None:
    hung = ScriptedServer(reply=None)
    try:
        started = time.monotonic()
        with pytest.raises(ClassifierUnavailable):
            RspamdClassifier(hung.address, hung.address, timeout=10.0).check(0.5)
        assert time.monotonic() - started < 2.0
    finally:
        hung.close()


def test_learning_is_forwarded(backend: RspamdClassifier,
                               rspamd_daemon: RspamdDaemon) -> None:  # noqa: F811
    spam_before, ham_before = _learns(rspamd_daemon)
    learned_before = backend.stats()["learned"]
    message = spam()
    backend.learn(message, spam=True)
    assert _learns(rspamd_daemon) == (spam_before + 1, ham_before)
    backend.learn(message, spam=True)  # the same message again: rspamd ignores it, no error
    assert _learns(rspamd_daemon) == (spam_before + 1, ham_before)
    backend.learn(ham(), spam=False)
    assert _learns(rspamd_daemon) == (spam_before + 1, ham_before + 1)
    assert backend.stats()["learned"] == learned_before + 2


def test_forget_moves_the_message_to_the_other_class(
        backend: RspamdClassifier, rspamd_daemon: RspamdDaemon) -> None:  # noqa: F811
    message = ham()
    spam_before, ham_before = _learns(rspamd_daemon)
    backend.learn(message, spam=True)  # a wrong training
    assert _learns(rspamd_daemon) == (spam_before + 1, ham_before)
    backend.forget(message, spam=True)
    assert _learns(rspamd_daemon) == (spam_before, ham_before + 1)


def test_wrong_password_is_unavailable(rspamd_daemon: RspamdDaemon) -> None:  # noqa: F811
    wrong = RspamdClassifier(rspamd_daemon.address, rspamd_daemon.controller,
                             password="not-it", timeout=5.0)
    with pytest.raises(ClassifierUnavailable, match="password"):
        wrong.learn(spam(), spam=True)


def test_plugin_offers_the_backend_from_configuration(
        make_app, rspamd_daemon: RspamdDaemon) -> None:  # noqa: F811
    app = make_app(**{"rspamd.address": rspamd_daemon.address,
                      "rspamd.controller": rspamd_daemon.controller,
                      "rspamd.password": rspamd_daemon.password, "rspamd.timeout": 5.0})
    backend = app.hooks.classifiers(app)["rspamd"]
    assert backend.classify(gtube()).label == "spam"
    assert isinstance(backend.stats()["learned"], int)


def test_daemon_down_is_unavailable_at_once() -> None:
    port = free_port()  # nobody listens there
    backend = RspamdClassifier(f"127.0.0.1:{port}", f"127.0.0.1:{port}", timeout=5.0)
    started = time.monotonic()
    with pytest.raises(ClassifierUnavailable):
        backend.classify(ham())
    with pytest.raises(ClassifierUnavailable):
        backend.learn(ham(), spam=False)
    assert time.monotonic() - started < 1.0


def test_hung_daemon_is_unavailable_within_the_timeout() -> None:
    hung = ScriptedServer(reply=None)
    try:
        backend = RspamdClassifier(hung.address, hung.address, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ClassifierUnavailable):
            backend.classify(ham())
        assert 0.4 < time.monotonic() - started < 2.0
    finally:
        hung.close()


@pytest.mark.parametrize("reply", [
    b"SPAMD/1.1 0 EX_OK\r\n\r\n",  # not HTTP at all
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",  # not JSON
    b'HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{"action": "x"}',  # no score
    b"HTTP/1.1 500 Internal Error\r\nContent-Length: 2\r\n\r\n{}",
], ids=["not-http", "not-json", "no-score", "http-500"])
def test_nonsense_answers_are_unavailable(reply: bytes) -> None:
    server = ScriptedServer(reply=reply)
    try:
        with pytest.raises(ClassifierUnavailable):
            RspamdClassifier(server.address, server.address, timeout=2.0).classify(ham())
    finally:
        server.close()


# -- through the filter daemon, as the classify stage's backend --------------------------
# rspamd: MISSING_FROM, MISSING_TO, MISSING_MID, MISSING_DATE, MISSING_SUBJECT: about 8 points
NO_HEADERS = b"\r\nHello, this message has no headers at all. Buy now.\r\n"



@pytest.fixture
def daemon(run_daemon, rspamd_daemon: RspamdDaemon):  # noqa: F811
    return run_daemon(**ONLY_CLASSIFY, **{
        "classify.outgoing_backend": "rspamd", "classify.incoming_backend": "rspamd",
        "rspamd.address": rspamd_daemon.address, "rspamd.controller": rspamd_daemon.controller,
        "rspamd.password": rspamd_daemon.password, "rspamd.timeout": 5.0})


def test_outgoing_gtube_is_held(daemon, sink) -> None:
    code, reply = send(daemon.outgoing_port, gtube())
    assert code == 250 and "held as " in reply, reply
    assert sink.messages == []


def test_outgoing_mail_below_the_threshold_is_delivered_with_the_backends_score(
        daemon, sink, rspamd_daemon: RspamdDaemon) -> None:  # noqa: F811
    code, reply = send(daemon.outgoing_port, NO_HEADERS)
    assert code == 250 and "delivered" in reply, reply  # outgoing threshold: 10 points
    [got] = sink.wait_for(1)
    assert b"X-IE-Filter-Action: deliver" in got.data
    shown = re.search(rb"X-IE-Filter-Score: (\S+)", got.data)
    direct = RspamdClassifier(rspamd_daemon.address, rspamd_daemon.controller).classify(NO_HEADERS)
    assert direct.score > 5
    assert shown and float(shown.group(1)) == pytest.approx(direct.score, abs=0.01)


def test_incoming_mail_rspamd_scores_high_is_junked(daemon, sink) -> None:
    code, reply = send(daemon.incoming_port, NO_HEADERS)
    assert code == 250, reply
    [got] = sink.wait_for(1)
    assert b"X-IE-Filter-Action: junk" in got.data


def test_rspamd_down_is_a_tempfail_for_outgoing_mail(run_daemon, sink) -> None:
    closed = f"127.0.0.1:{free_port()}"
    d = run_daemon(**ONLY_CLASSIFY, **{"classify.outgoing_backend": "rspamd",
                                       "rspamd.address": closed, "rspamd.controller": closed})
    code, reply = send(d.outgoing_port, ham())
    assert code == 451, reply
    assert sink.messages == []


# rspamd logs one line per scanned message with the envelope it was given
AUTHENTICATED = (b"Received: from client.example.net (client.example.net [192.0.2.7])\r\n"
                 b"\t(Authenticated sender: alice@example.com)\r\n"
                 b"\tby mx.example.com (Postfix) with ESMTPSA id 4XyZ1abcDE;\r\n"
                 b"\tMon, 2 Jun 2025 10:00:00 +0000\r\n")


def rspamd_log_line(daemon: RspamdDaemon, message_id: str,  # noqa: F811
                    timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = (daemon.workdir / "rspamd.log").read_text(errors="replace")
        found = [line for line in log.splitlines()
                 if "rspamd_task_write_log" in line and f"id: <{message_id}>" in line]
        if found or time.monotonic() > deadline:
            assert found, f"rspamd logged no scan of <{message_id}>"
            return found[-1]
        time.sleep(0.1)


def test_the_daemon_gives_rspamd_the_envelope(daemon, sink,
                                              rspamd_daemon: RspamdDaemon) -> None:  # noqa: F811
    raw = AUTHENTICATED + ham()
    message_id = email.message_from_bytes(raw)["Message-ID"].strip("<>")
    with smtplib.SMTP("127.0.0.1", daemon.outgoing_port, timeout=30) as s:
        s.ehlo()
        s.mail("mallory@evil.test")
        s.rcpt("bob@example.org")
        s.rcpt("carol@example.net")
        code, reply = s.data(raw)
    assert code == 250, reply
    sink.wait_for(1)
    line = rspamd_log_line(rspamd_daemon, message_id)
    assert "qid: <4XyZ1abcDE>" in line
    assert "ip: 127.0.0.1," in line  # who handed it to ie: here the test, normally the MTA
    assert "user: alice@example.com," in line  # vouched for by the MTA's Received line
    assert "from: <mallory@evil.test>" in line
    assert "rcpts: <bob@example.org,carol@example.net>" in line
    assert "FORGED_SENDER(" in line  # envelope sender differs from the From header
