"""The SpamAssassin backend against a real spamd (faults: a closed port and fake servers), and
spamd as the classify stage's backend through the real filter daemon and quarantine."""

from __future__ import annotations

import re
import time

import pytest

from ie_core.classifier import ClassifierUnavailable
from ie_plugins.spamassassin import SpamAssassinClassifier
from tests.fixtures.classifier_messages import ONLY_CLASSIFY, gtube, ham, send, spam
from tests.fixtures.netdaemon import ScriptedServer
from tests.fixtures.sink import free_port
from tests.fixtures.spamd import SpamdDaemon, spamd_daemon  # noqa: F401 (fixture)


@pytest.fixture
def backend(spamd_daemon: SpamdDaemon) -> SpamAssassinClassifier:  # noqa: F811
    return SpamAssassinClassifier(spamd_daemon.address, user="ie", timeout=20.0)


def test_gtube_is_spam(backend: SpamAssassinClassifier) -> None:
    result = backend.classify(gtube())
    assert result.label == "spam"
    assert result.score >= 1000
    assert result.extra["required_score"] == 5.0
    assert "GTUBE" in result.extra["symbols"]
    assert "GTUBE" in result.detail


def test_ham_scores_low(backend: SpamAssassinClassifier) -> None:
    result = backend.classify(ham())
    assert result.label == "ham"
    assert result.score < 3


def test_learn_and_forget_reach_the_bayes_database(
        backend: SpamAssassinClassifier, spamd_daemon: SpamdDaemon) -> None:  # noqa: F811
    before = spamd_daemon.bayes_counts()
    message = spam()
    backend.learn(message, spam=True)
    after_spam = spamd_daemon.bayes_counts()
    assert after_spam["nspam"] == before.get("nspam", 0) + 1
    backend.learn(message, spam=True)  # learned before: spamd does nothing, no error
    assert spamd_daemon.bayes_counts() == after_spam
    backend.forget(message, spam=True)
    assert spamd_daemon.bayes_counts()["nspam"] == before.get("nspam", 0)
    backend.learn(ham(), spam=False)
    assert spamd_daemon.bayes_counts()["nham"] == before.get("nham", 0) + 1


def test_stats_says_spamd_answers(backend: SpamAssassinClassifier) -> None:
    stats = backend.stats()
    assert stats["alive"] is True
    assert stats["reply"] == "PONG"


def test_plugin_offers_the_backend_from_configuration(
        make_app, spamd_daemon: SpamdDaemon) -> None:  # noqa: F811
    app = make_app(**{"spamassassin.address": spamd_daemon.address,
                      "spamassassin.timeout": 20.0})
    backend = app.hooks.classifiers(app)["spamassassin"]
    assert backend.classify(gtube()).label == "spam"


def test_daemon_down_is_unavailable_at_once() -> None:
    backend = SpamAssassinClassifier(f"127.0.0.1:{free_port()}", timeout=5.0)
    started = time.monotonic()
    with pytest.raises(ClassifierUnavailable):
        backend.classify(ham())
    with pytest.raises(ClassifierUnavailable):
        backend.learn(ham(), spam=False)
    assert time.monotonic() - started < 1.0


def test_hung_daemon_is_unavailable_within_the_timeout() -> None:
    hung = ScriptedServer(reply=None)
    try:
        backend = SpamAssassinClassifier(hung.address, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ClassifierUnavailable):
            backend.classify(ham())
        assert 0.4 < time.monotonic() - started < 2.0
    finally:
        hung.close()


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\n\r\n{}",  # not spamd
    b"SPAMD/1.1 0 EX_OK\r\nContent-length: 5\r\n\r\nGTUBE",  # no Spam header
    b"SPAMD/1.1 0 EX_OK\r\nSpam: maybe ; lots / 5\r\n\r\n",  # unreadable Spam header
    b"SPAMD/1.0 76 Bad header line: x\r\n",  # an error code
    b"",  # closed without a word
], ids=["not-spamd", "no-spam-header", "bad-spam-header", "error-code", "empty"])
def test_nonsense_answers_are_unavailable(reply: bytes) -> None:
    server = ScriptedServer(reply=reply)
    try:
        with pytest.raises(ClassifierUnavailable):
            SpamAssassinClassifier(server.address, timeout=2.0).classify(ham())
    finally:
        server.close()


def test_messages_over_max_size_are_not_sent() -> None:
    down = f"127.0.0.1:{free_port()}"  # would raise if the message were sent
    backend = SpamAssassinClassifier(down, timeout=5.0, max_size=1000)
    big = gtube() + b"x" * 1000
    result = backend.classify(big)
    assert (result.label, result.score, result.extra["skipped"]) == ("ham", 0.0, "too large")
    backend.learn(big, spam=True)
    with pytest.raises(ClassifierUnavailable):
        backend.classify(gtube())  # small enough: it is sent, and nobody answers


# -- through the filter daemon, as the classify stage's backend --------------------------
# SpamAssassin: MISSING_DATE, MISSING_FROM, MISSING_HEADERS, MISSING_SUBJECT, ...: 5.2 points
NO_HEADERS = b"\r\nHello, this is a message without any headers at all. Buy now.\r\n"



@pytest.fixture
def daemon(run_daemon, spamd_daemon: SpamdDaemon):  # noqa: F811
    return run_daemon(**ONLY_CLASSIFY, **{
        "classify.outgoing_backend": "spamassassin",
        "classify.incoming_backend": "spamassassin",
        "spamassassin.address": spamd_daemon.address, "spamassassin.timeout": 20.0})


def test_outgoing_gtube_is_held(daemon, sink) -> None:
    code, reply = send(daemon.outgoing_port, gtube())
    assert code == 250 and "held as " in reply, reply
    assert sink.messages == []


def test_outgoing_mail_below_the_threshold_is_delivered_with_the_backends_score(
        daemon, sink, spamd_daemon: SpamdDaemon) -> None:  # noqa: F811
    code, reply = send(daemon.outgoing_port, NO_HEADERS)
    assert code == 250 and "delivered" in reply, reply  # outgoing threshold: 10 points
    [got] = sink.wait_for(1)
    assert b"X-IE-Filter-Action: deliver" in got.data
    shown = re.search(rb"X-IE-Filter-Score: (\S+)", got.data)
    direct = SpamAssassinClassifier(spamd_daemon.address, timeout=20.0).classify(NO_HEADERS)
    assert direct.score > 5
    assert shown and float(shown.group(1)) == pytest.approx(direct.score, abs=0.01)


def test_incoming_mail_spamassassin_scores_high_is_junked(daemon, sink) -> None:
    code, reply = send(daemon.incoming_port, NO_HEADERS)
    assert code == 250, reply
    [got] = sink.wait_for(1)
    assert b"X-IE-Filter-Action: junk" in got.data


def test_spamd_down_is_a_tempfail_for_outgoing_mail(run_daemon, sink) -> None:
    d = run_daemon(**ONLY_CLASSIFY, **{"classify.outgoing_backend": "spamassassin",
                                       "spamassassin.address": f"127.0.0.1:{free_port()}"})
    code, reply = send(d.outgoing_port, ham())
    assert code == 451, reply
    assert sink.messages == []
