"""Stage order is configuration, findings accumulate, the policy picks one action."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ie_core import Action, Bypass, ConfigError, Direction, Finding, MessageContext, Phase, Stage
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
    assert v.action is Action.TEMPFAIL and str(v.smtp_reply).startswith("451")
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


def test_after_a_final_finding_the_checks_stop_and_the_decisions_still_run():
    calls: list[str] = []
    bypass = stage("bypass", Finding("bypass", bypass=Bypass.CONTENT), calls=calls)
    skipped = stage("content", Finding("content", "spam", 9, Action.QUARANTINE), calls=calls)

    def limit(c: MessageContext) -> Finding:
        calls.append("limit")
        assert c.verdict.bypass is Bypass.CONTENT and c.verdict.action is Action.DELIVER
        return Finding("limit", "ratelimit", 0, Action.QUARANTINE)

    verdict = run_stages(ctx(), [bypass, skipped, Stage("limit", limit, phase=Phase.DECIDE)])
    assert calls == ["bypass", "limit"]
    assert (verdict.action, verdict.reasons) == (Action.QUARANTINE, ["ratelimit"])


def test_a_decision_sees_the_checks_verdict_and_a_decoration_the_final_one():
    seen: list[tuple[str, Action]] = []

    def look(name: str) -> Stage:
        def run(c: MessageContext) -> Finding | None:
            seen.append((name, c.verdict.action))
            if name == "decide":
                return Finding("decide", "ratelimit", 0, Action.QUARANTINE)
            c.add_header("X-Seen", name)
            return None
        phase = Phase.DECIDE if name == "decide" else Phase.DECORATE
        return Stage(name, run, phase=phase)

    c = ctx()
    verdict = run_stages(c, [stage("junk", Finding("junk", None, 1, Action.JUNK)),
                             look("decide"), look("decorate")])
    assert seen == [("decide", Action.JUNK), ("decorate", Action.QUARANTINE)]
    assert verdict.action is Action.QUARANTINE and c.verdict is verdict
    assert c.header_changes.apply(c.raw).startswith(b"X-Seen: decorate\r\nSubject: x")
    assert c.raw.startswith(b"Subject: x")  # the message itself is never rewritten


def test_the_verdict_is_not_readable_while_checking():
    def peek(c: MessageContext) -> Finding | None:
        c.verdict  # noqa: B018 - reading it is the test
        return None
    verdict = run_stages(ctx(), [Stage("peek", peek)])
    assert verdict.action is Action.TEMPFAIL and "peek" in (verdict.error or "")


def test_a_decoration_that_returns_a_finding_is_a_tempfail():
    late = Stage("late", lambda c: Finding("late", "spam", 9, Action.QUARANTINE),
                 phase=Phase.DECORATE)
    verdict = run_stages(ctx(), [late])
    assert verdict.action is Action.TEMPFAIL and "decorate" in (verdict.error or "")


def test_the_default_order_is_by_phase_then_priority():
    s = [Stage("mark", lambda c: None, phase=Phase.DECORATE, priority=1),
         Stage("limit", lambda c: None, phase=Phase.DECIDE, priority=1),
         stage("spam", priority=900), stage("early", priority=100)]
    assert [x.name for x in order_stages(s, Direction.OUTGOING, [])] == [
        "early", "spam", "limit", "mark"]


def test_a_configured_order_that_breaks_the_phases_is_refused():
    s = [stage("spam"), Stage("limit", lambda c: None, phase=Phase.DECIDE),
         Stage("mark", lambda c: None, phase=Phase.DECORATE)]
    assert [x.name for x in order_stages(s, Direction.OUTGOING, ["spam", "limit", "mark"])] \
        == ["spam", "limit", "mark"]
    with pytest.raises(ConfigError, match=r"^pipeline.outgoing: stage 'spam' \(check\) is "
                                          r"listed after 'limit' \(decide\)"):
        order_stages(s, Direction.OUTGOING, ["limit", "spam", "mark"])
    with pytest.raises(ConfigError, match="stage 'limit' \\(decide\\) is listed after 'mark'"):
        order_stages(s, Direction.OUTGOING, ["spam", "mark", "limit"])
