"""Walking the stages for one message, and the policy step that picks the action.

A stage that raises is logged with its name and the message becomes a tempfail: an
exception never turns into an accepted-and-dropped message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ie_core.message import MessageContext
from ie_core.stages import Stage
from ie_core.verdict import Action, Finding, Verdict

log = logging.getLogger("ie.pipeline")

TEMPFAIL_REPLY = "451 4.3.0 Temporary filter failure, try again later"
REJECT_REPLY = "550 5.7.1 Message refused by policy"


def run_stages(ctx: MessageContext, stages: Sequence[Stage]) -> Verdict:
    ended = False  # a final finding: only stages that run after one still run
    for stage in stages:
        if ended and not stage.after_final:
            continue
        try:
            finding = stage.run(ctx)
        except Exception as err:
            log.exception("event=stage_error stage=%s msgid=%s error=%s",
                          stage.name, ctx.id, type(err).__name__)
            failure = Finding(stage=stage.name, reason=None, action=Action.TEMPFAIL,
                              detail=f"stage {stage.name} failed: {type(err).__name__}")
            ctx.findings.append(failure)
            return Verdict(Action.TEMPFAIL, list(ctx.findings), smtp_reply=TEMPFAIL_REPLY,
                           error=failure.detail)
        if finding is None:
            continue
        ctx.findings.append(finding)
        ended = ended or finding.final
    return decide(ctx.findings)


def decide(findings: Sequence[Finding]) -> Verdict:
    """The most severe action any finding asks for; the score is the findings' sum."""
    action = max((f.action for f in findings), key=lambda a: a.severity, default=Action.DELIVER)
    score = round(sum(f.score for f in findings), 3)
    reply = {Action.TEMPFAIL: TEMPFAIL_REPLY, Action.REJECT: REJECT_REPLY}.get(action)
    return Verdict(action, list(findings), score=score, smtp_reply=reply)
