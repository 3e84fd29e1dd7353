"""Walking a message through the phases (check, decide, decorate) and the policy step
that turns findings into a verdict.

A stage that raises is logged with its name and the message becomes a tempfail: an
exception never turns into an accepted-and-dropped message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from ie_core import metrics, replies
from ie_core.message import MessageContext
from ie_core.stages import Phase, Stage
from ie_core.verdict import Action, Finding, Verdict

log = logging.getLogger("ie.pipeline")


def run_stages(ctx: MessageContext, stages: Sequence[Stage]) -> Verdict:
    """Run ``stages`` (already in phase order, see :func:`ie_core.stages.order_stages`)
    and return the final verdict, also left in ``ctx.decided``."""
    checks_ended = False
    stage_latency = metrics.get().stage_latency
    for stage in stages:
        if stage.phase is Phase.CHECK and checks_ended:
            continue
        if stage.phase is not Phase.CHECK and ctx.decided is None:
            ctx.decided = decide(ctx.findings)
        started = time.perf_counter()
        try:
            finding = stage.run(ctx)
        except Exception as err:
            log.exception("event=stage_error stage=%s msgid=%s error=%s",
                          stage.name, ctx.id, type(err).__name__)
            return _failed(ctx, stage, type(err).__name__)
        finally:
            stage_latency.labels(stage.name).observe(time.perf_counter() - started)
        if finding is None:
            continue
        if stage.phase is Phase.DECORATE:
            log.error("event=stage_error stage=%s msgid=%s error=finding_while_decorating",
                      stage.name, ctx.id)
            return _failed(ctx, stage, "a finding in the decorate phase")
        ctx.findings.append(finding)
        checks_ended = checks_ended or finding.ends_checks
        if stage.phase is Phase.DECIDE:
            ctx.decided = decide(ctx.findings)
    ctx.decided = decide(ctx.findings)
    return ctx.decided


def _failed(ctx: MessageContext, stage: Stage, what: str) -> Verdict:
    failure = Finding(stage=stage.name, reason=None, action=Action.TEMPFAIL,
                      detail=f"stage {stage.name} failed: {what}")
    ctx.findings.append(failure)
    ctx.decided = Verdict(Action.TEMPFAIL, list(ctx.findings), smtp_reply=replies.TEMPFAIL,
                          error=failure.detail)
    return ctx.decided


def decide(findings: Sequence[Finding]) -> Verdict:
    """The most severe action any finding asks for; the score is the findings' sum.  A
    REJECT or TEMPFAIL verdict replies with the first such finding's own reply, if it
    gave one, else the generic one."""
    action = max((f.action for f in findings), key=lambda a: a.severity, default=Action.DELIVER)
    score = round(sum(f.score for f in findings), 3)
    reply = {Action.TEMPFAIL: replies.TEMPFAIL, Action.REJECT: replies.REJECT}.get(action)
    if reply is not None:
        reply = next((f.reply for f in findings if f.action is action and f.reply), reply)
    return Verdict(action, list(findings), score=score, smtp_reply=reply)
