"""Stage order is configuration, findings accumulate, the policy picks one action."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ie_core import Action, ConfigError, Direction, Finding, MessageContext, Stage
from ie_core.pipeline import decide, run_stages
from ie_core.stages import order_stages


def ctx() -> MessageContext:
    return MessageContext(Direction.OUTGOING, b"Subject: x\r\n\r\ny\r\n", "a@b.example",
                          ["c@d.example"], datetime.now(UTC))


def stage(name: str, finding: Finding | None = None, priority: int = 500,
          calls: list[str] | None = None) -> Stage:
    def run(c: MessageContext) -> Finding | None:
        if calls is not None:
            calls.append(name)
        return finding
    return Stage(name=name, run=run, priority=priority)


def test_findings_accumulate_and_the_most_severe_action_wins():
    stages = [stage("a", Finding("a", "spam", 7.5, Action.QUARANTINE)),
              stage("b", Finding("b", "winexec", 0, Action.QUARANTINE)),
              stage("c", Finding("c", None, 1.0, Action.JUNK))]
    v = run_stages(ctx(), stages)
    assert v.action is Action.QUARANTINE
    assert v.reasons == ["spam", "winexec"]
    assert v.score == 8.5
    assert v.hits == ["a", "b", "c"]


def test_a_final_finding_stops_the_pipeline():
    calls: list[str] = []
    stages = [stage("wl", Finding("wl", final=True), calls=calls),
              stage("spam", Finding("spam", "spam", 10, Action.QUARANTINE), calls=calls)]
    v = run_stages(ctx(), stages)
    assert calls == ["wl"] and v.action is Action.DELIVER


def test_an_exception_is_a_tempfail_named_after_the_stage():
    def boom(c):
        raise RuntimeError("x")
    v = run_stages(ctx(), [Stage("boom", boom)])
    assert v.action is Action.TEMPFAIL and v.smtp_reply.startswith("451")
    assert "boom" in v.findings[0].detail


def test_order_comes_from_configuration_not_registration():
    s = [stage("late", priority=900), stage("early", priority=100), stage("mid")]
    assert [x.name for x in order_stages(s, Direction.OUTGOING, [])] == ["early", "mid", "late"]
    assert [x.name for x in order_stages(s, Direction.OUTGOING, ["late", "early"])] == [
        "late", "early"]
    with pytest.raises(ConfigError, match="no loaded plugin provides a stage named 'typo'"):
        order_stages(s, Direction.OUTGOING, ["typo"])


def test_no_findings_means_deliver():
    assert decide([]).action is Action.DELIVER


def test_after_a_final_finding_only_stages_marked_after_final_run():
    calls: list[str] = []
    bypass = stage("bypass", Finding("bypass", final=True), calls=calls)
    skipped = stage("content", Finding("content", "spam", 9, Action.QUARANTINE), calls=calls)
    limit = Stage(name="limit", after_final=True, run=lambda c: calls.append("limit") or
                  Finding("limit", "ratelimit", 0, Action.QUARANTINE))
    verdict = run_stages(ctx(), [bypass, skipped, limit])
    assert calls == ["bypass", "limit"]
    assert (verdict.action, verdict.reasons) == (Action.QUARANTINE, ["ratelimit"])
