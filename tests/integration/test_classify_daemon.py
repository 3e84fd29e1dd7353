"""Classification through the real daemon and the real quarantine: GTUBE is held, the
built-in classifier trained on part of the corpus holds spam it has not seen, learning
and forgetting move that message's score, too little training passes mail as unsure, and a
classifier that is down makes outgoing mail a 451."""

from __future__ import annotations

import smtplib

from sqlalchemy import select

from ie_core import hookimpl
from ie_core.classifier import ClassifierUnavailable
from ie_plugins.quarantine.models import HeldMessage
from tests.unit.test_bayes_classifier import corpus, trained, unseen_spam

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def send(port: int, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo()
        s.mail("alice@example.com")
        s.rcpt("bob@example.org")
        code, reply = s.data(raw)
    return code, reply


def held(app) -> list[HeldMessage]:
    with app.db.session() as s:
        return list(s.scalars(select(HeldMessage)))


def test_gtube_is_held(run_daemon, sink):
    d = run_daemon()
    code, _ = send(d.outgoing_port, b"From: alice@example.com\r\nTo: bob@example.org\r\n"
                   b"Subject: test\r\n\r\n" + GTUBE + b"\r\n")
    assert code == 250
    [row] = held(d.app)
    assert "spam" in row.reasons
    assert sink.messages == []


def test_trained_builtin_holds_unseen_spam_and_learning_moves_its_score(run_daemon, sink):
    d = run_daemon()
    clf = trained(d.app)
    spam = max(unseen_spam(), key=lambda m: clf.classify(m).score)
    first = clf.classify(spam)
    assert (first.label, first.score >= 10.0) == ("spam", True)
    code, _ = send(d.outgoing_port, spam)
    assert code == 250
    assert [r.reasons for r in held(d.app)] == [["spam"]]
    assert sink.messages == []

    d.app.hooks.learn(d.app, spam, False)  # an admin says it is ham (as a release would)
    as_ham = clf.classify(spam)
    assert as_ham.score < first.score
    clf.forget(spam, False)
    assert clf.classify(spam).score == first.score
    clf.learn(spam, True)
    assert clf.classify(spam).score >= first.score


def test_unsure_before_the_minimum_delivers_with_its_score(run_daemon, sink):
    d = run_daemon()
    clf = d.app.hooks.classifiers(d.app)["builtin"]
    clf.learn_many(corpus("ham")[:10], spam=False)
    clf.learn_many(corpus("spam")[:10], spam=True)
    code, _ = send(d.outgoing_port, corpus("spam")[20])
    assert code == 250
    [got] = sink.wait_for(1)
    assert b"X-IE-Filter-Score: 0.00" in got.data.split(b"\r\n\r\n", 1)[0]
    assert held(d.app) == []


class DownBackend:
    name = "down"

    def classify(self, raw: bytes, envelope: object = None):
        raise ClassifierUnavailable("connection refused")

    def learn(self, raw: bytes, spam: bool) -> None:
        raise ClassifierUnavailable("connection refused")

    def forget(self, raw: bytes, spam: bool) -> None:
        raise ClassifierUnavailable("connection refused")

    def stats(self):
        raise ClassifierUnavailable("connection refused")


class DownPlugin:
    @hookimpl
    def ie_classifiers(self, app):
        return [DownBackend()]


def test_classifier_down_is_451_for_outgoing_mail(run_daemon, sink):
    d = run_daemon(plugins=[("down", DownPlugin())], **{"classify.outgoing_backend": "down"})
    code, reply = send(d.outgoing_port, b"From: alice@example.com\r\nSubject: hi\r\n\r\nhi\r\n")
    assert code == 451
    assert b"Traceback" not in reply
    assert sink.messages == [] and held(d.app) == []
