"""The ``classify`` stage with small test backends: thresholds per direction, unsure never
holds, GTUBE, fallbacks when the backend is down, run-time threshold changes, learning."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ie_core import Action, ConfigError, Direction, MessageContext, hookimpl
from ie_core.classifier import Classification, ClassifierUnavailable, Envelope
from ie_core.processor import analyse

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@dataclass
class FixedBackend:
    """Answers whatever score/label the test sets; records what it was taught."""

    name: str = "fixed"
    score: float = 0.0
    label: str = "ham"
    down: bool = False
    learned: list[tuple[bytes, bool]] = field(default_factory=list)
    envelopes: list[Envelope | None] = field(default_factory=list)

    def classify(self, raw: bytes, envelope: Envelope | None = None) -> Classification:
        self.envelopes.append(envelope)
        if self.down:
            raise ClassifierUnavailable("connection refused")
        return Classification(self.score, self.label, "test")

    def learn(self, raw: bytes, spam: bool) -> None:
        self.learned.append((raw, spam))

    def forget(self, raw: bytes, spam: bool) -> None:
        self.learned.remove((raw, spam))

    def stats(self) -> dict[str, int]:
        return {"learned": len(self.learned)}


class BackendPlugin:
    def __init__(self, *backends: FixedBackend) -> None:
        self.backends = backends

    @hookimpl
    def ie_classifiers(self, app):
        return list(self.backends)


def make(make_app, backend: FixedBackend, **config):
    config.setdefault("classify.outgoing_backend", backend.name)
    config.setdefault("classify.incoming_backend", backend.name)
    return make_app(plugins=[("test-backend", BackendPlugin(backend))],
                    **{"pipeline.outgoing": ["classify"], "pipeline.incoming": ["classify"]},
                    **config)


def run(app, direction: Direction, raw: bytes = b"Subject: hi\r\n\r\nhello\r\n"):
    ctx = MessageContext(direction=direction, raw=raw, mail_from="a@example.com",
                         rcpt_tos=["b@example.org"], received_at=app.clock.now(),
                         dry_run=True)
    return analyse(app, ctx)


@pytest.mark.parametrize("score, label, action", [
    (9.99, "spam", Action.DELIVER),
    (10.0, "spam", Action.QUARANTINE),
    (50.0, "unsure", Action.DELIVER),
    (-2.0, "ham", Action.DELIVER),
])
def test_outgoing_holds_only_clear_spam(make_app, score, label, action):
    app = make(make_app, FixedBackend(score=score, label=label))
    verdict = run(app, Direction.OUTGOING)
    assert verdict.action is action
    assert verdict.score == score  # every message carries its score
    assert verdict.reasons == (["spam"] if action is Action.QUARANTINE else [])


def test_incoming_marks_junk_at_its_own_threshold(make_app):
    backend = FixedBackend(score=6.0, label="spam")
    app = make(make_app, backend)
    assert run(app, Direction.INCOMING).action is Action.JUNK
    assert run(app, Direction.OUTGOING).action is Action.DELIVER


def test_thresholds_change_at_run_time(make_app):
    app = make(make_app, FixedBackend(score=6.0, label="spam"))
    app.settings.set("classify.outgoing_threshold", 6.0)
    app.settings.invalidate()
    assert run(app, Direction.OUTGOING).action is Action.QUARANTINE


def test_gtube_is_spam_whatever_the_backend_says(make_app):
    app = make(make_app, FixedBackend(score=-5.0, label="ham"))
    raw = b"Subject: test\r\n\r\n" + GTUBE + b"\r\n"
    out, inc = run(app, Direction.OUTGOING, raw), run(app, Direction.INCOMING, raw)
    assert (out.action, out.reasons) == (Action.QUARANTINE, ["spam"])
    assert inc.action is Action.JUNK
    assert out.score >= 1000


def test_backend_down_tempfails_outgoing_and_passes_incoming_by_default(make_app):
    app = make(make_app, FixedBackend(down=True))
    out = run(app, Direction.OUTGOING)
    assert out.action is Action.TEMPFAIL
    assert str(out.smtp_reply).startswith("451")
    assert "unavailable" in out.findings[0].detail
    assert run(app, Direction.INCOMING).action is Action.DELIVER


def test_fallbacks_are_configurable(make_app):
    app = make(make_app, FixedBackend(down=True), **{"classify.outgoing_fallback": "pass",
                                                      "classify.incoming_fallback": "tempfail"})
    assert run(app, Direction.OUTGOING).action is Action.DELIVER
    assert run(app, Direction.INCOMING).action is Action.TEMPFAIL


def test_backend_per_direction_and_unknown_backend_is_a_tempfail(make_app):
    spammy, hammy = FixedBackend("spammy", 20.0, "spam"), FixedBackend("hammy", -1.0, "ham")
    app = make_app(plugins=[("b", BackendPlugin(spammy, hammy))],
                   **{"classify.outgoing_backend": "hammy",
                      "classify.incoming_backend": "spammy",
                      "pipeline.outgoing": ["classify"], "pipeline.incoming": ["classify"]})
    assert run(app, Direction.OUTGOING).action is Action.DELIVER
    assert run(app, Direction.INCOMING).action is Action.JUNK
    broken = make_app(**{"classify.outgoing_backend": "nosuch",
                         "pipeline.outgoing": ["classify"]})
    assert run(broken, Direction.OUTGOING).action is Action.TEMPFAIL
    with pytest.raises(ConfigError, match="classify.outgoing_backend: no loaded plugin"):
        broken.check_pipeline()  # what ie-filterd does at start and on reload


def test_backends_are_looked_up_once_per_configuration_and_fallbacks_checked(make_app):
    calls = []

    class CountingPlugin(BackendPlugin):
        @hookimpl
        def ie_classifiers(self, app):
            calls.append(1)
            return list(self.backends)

    app = make_app(plugins=[("b", CountingPlugin(FixedBackend()))],
                   **{"classify.outgoing_backend": "fixed", "classify.incoming_backend": "fixed",
                      "pipeline.outgoing": ["classify"], "pipeline.incoming": ["classify"]})
    for _ in range(3):
        assert run(app, Direction.OUTGOING).action is Action.DELIVER
    assert 0 < len(calls) <= 2  # when the stages were built, not per message
    typo = make(make_app, FixedBackend(), **{"classify.outgoing_fallback": "pas"})
    with pytest.raises(ConfigError, match="classify.outgoing_fallback must be one of"):
        typo.check_pipeline()


def test_learn_hook_trains_each_configured_backend_once(make_app):
    one, two, unused = FixedBackend("one"), FixedBackend("two"), FixedBackend("unused")
    app = make_app(plugins=[("b", BackendPlugin(one, two, unused))],
                   **{"classify.outgoing_backend": "one", "classify.incoming_backend": "two"})
    app.hooks.learn(app, b"Subject: x\r\n\r\ny\r\n", True)
    assert [len(b.learned) for b in (one, two, unused)] == [1, 1, 0]
    same = FixedBackend("same")
    app2 = make_app(plugins=[("b2", BackendPlugin(same))],
                    **{"classify.outgoing_backend": "same", "classify.incoming_backend": "same"})
    app2.hooks.learn(app2, b"Subject: x\r\n\r\ny\r\n", False)
    assert same.learned == [(b"Subject: x\r\n\r\ny\r\n", False)]


def test_the_backend_gets_the_envelope(make_app):
    backend = FixedBackend()
    app = make(make_app, backend)
    raw = (b"Received: from client.example.net (client.example.net [192.0.2.7])\r\n"
           b"\t(Authenticated sender: alice@example.com)\r\n"
           b"\tby mx.example.com (Postfix) with ESMTPSA id 4XyZ1abcDE;\r\n"
           b"\tMon, 2 Jun 2025 10:00:00 +0000\r\n"
           b"Subject: hi\r\n\r\nhello\r\n")
    ctx = MessageContext(direction=Direction.OUTGOING, raw=raw, mail_from="",
                         rcpt_tos=["b@example.org", "c@example.net"],
                         received_at=app.clock.now(), queue_id="4XyZ1abcDE",
                         peer="127.0.0.1", dry_run=True)
    analyse(app, ctx)
    assert backend.envelopes == [Envelope(mail_from="", rcpt_tos=("b@example.org",
                                                                  "c@example.net"),
                                          client_ip="127.0.0.1", queue_id="4XyZ1abcDE",
                                          auth_user="alice@example.com")]
