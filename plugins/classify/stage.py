"""The ``classify`` stage: ask the backend configured for the message's direction (giving it
the envelope), apply the run-time threshold, and turn "backend down" into the configured
fallback.

Every classified message gets a finding with its score (so the verdict header shows it);
only a score at or above the direction's threshold with a label other than ``unsure``
holds outgoing mail (quarantine, reason ``spam``) or junks incoming mail.  GTUBE is spam
whatever the backend says, so the path can be tested end to end.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ie_core import Action, App, ConfigError, Direction, Finding, MessageContext, Stage, metrics
from ie_core.classifier import Classification, Classifier, ClassifierUnavailable, Envelope
from ie_core.runtime import current
from ie_plugins.classify.settings import FALLBACK_PASS, FALLBACKS, THRESHOLDS

log = logging.getLogger("ie.classify")

NAME = "classify"
PRIORITY = 400
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
GTUBE_SCORE = 1000.0
HOLD_ACTION = {Direction.OUTGOING: Action.QUARANTINE, Direction.INCOMING: Action.JUNK}


def backend_for(app: App, direction: Direction) -> Classifier:
    """The backend configured for ``direction`` (a missing one is a configuration error)."""
    name = app.config.get(f"classify.{direction.value}_backend")
    backends = app.hooks.classifiers(app)
    backend = backends.get(name)
    if backend is None:
        raise ConfigError(f"classify.{direction.value}_backend: no loaded plugin offers a "
                          f"classifier named '{name}' (known: {', '.join(sorted(backends))})")
    return backend


def configured_backends(app: App) -> list[Classifier]:
    """The backends of both directions, each once."""
    found: dict[str, Classifier] = {}
    for direction in Direction:
        backend = backend_for(app, direction)
        found.setdefault(backend.name, backend)
    return list(found.values())


def classify(app: App, ctx: MessageContext, backend: Classifier) -> Finding:
    direction = ctx.direction
    if GTUBE in ctx.raw:
        return Finding(stage=NAME, reason="spam", score=GTUBE_SCORE,
                       action=HOLD_ACTION[direction], detail="GTUBE test message")
    try:
        result = backend.classify(ctx.raw, envelope_of(ctx))
    except ClassifierUnavailable as err:
        return _unavailable(app, ctx, backend.name, err)
    threshold = float(current(app, THRESHOLDS[direction]))
    detail = f"backend={backend.name} label={result.label} {result.detail}".strip()
    if is_spam(result, threshold):
        return Finding(stage=NAME, reason="spam", score=result.score,
                       action=HOLD_ACTION[direction], detail=detail)
    return Finding(stage=NAME, score=result.score, detail=detail)


def envelope_of(ctx: MessageContext) -> Envelope:
    return Envelope(mail_from=ctx.mail_from, rcpt_tos=tuple(ctx.rcpt_tos), client_ip=ctx.peer,
                    queue_id=ctx.queue_id, auth_user=ctx.identity.auth_user)


def is_spam(result: Classification, threshold: float) -> bool:
    return result.label != "unsure" and result.score >= threshold


def _unavailable(app: App, ctx: MessageContext, backend: str,
                 err: ClassifierUnavailable) -> Finding:
    fallback = app.config.get(f"classify.{ctx.direction.value}_fallback")
    metrics.counter("ie_classifier_errors", "Classifier calls that failed",
                    ("backend", "kind")).labels(backend, "timeout" if err.timed_out
                                                else "error").inc()
    log.warning("event=classifier_unavailable msgid=%s backend=%s direction=%s fallback=%s "
                "error=%s", ctx.id, backend, ctx.direction.value, fallback,
                " ".join(str(err).split())[:200])
    if fallback == FALLBACK_PASS:
        return Finding(stage=NAME, detail=f"backend={backend} unavailable, passed")
    return Finding(stage=NAME, action=Action.TEMPFAIL,
                   detail=f"backend={backend} unavailable: {err}")


def stages(app: App) -> Sequence[Stage]:
    """The backends and fallbacks are checked here, once per configuration (the App caches
    its stages): a name nobody offers stops ie-filterd at start with one line, and no
    hook runs per message."""
    backends = {direction: backend_for(app, direction) for direction in Direction}
    for direction in Direction:
        key = f"classify.{direction.value}_fallback"
        if app.config.get(key) not in FALLBACKS:
            raise ConfigError(f"{key} must be one of {', '.join(FALLBACKS)}, "
                              f"not {app.config.get(key)!r}")
    return [Stage(name=NAME, run=lambda ctx: classify(app, ctx, backends[ctx.direction]),
                  priority=PRIORITY,
                  description="score with the direction's classifier: hold or junk spam")]
