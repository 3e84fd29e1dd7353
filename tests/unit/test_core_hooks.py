"""The typed observer calls: a plugin that raises in ``ie_action_taken`` or ``ie_event``
is logged, never raised to the caller (the message is already safe)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from ie_core import Action, Direction, MessageContext, Outcome, Result, Verdict, hookimpl
from ie_core.events import Event

DELIVERED = Outcome(Result.DELIVERED)


def a_message() -> MessageContext:
    return MessageContext(direction=Direction.OUTGOING, raw=b"Subject: s\r\n\r\n",
                          mail_from="a@example.com", rcpt_tos=["b@example.org"],
                          received_at=datetime.now(UTC))


def an_event(number: int) -> Event:
    return Event(id=number, created_at=datetime.now(UTC), kind="test", account=None,
                 payload={})


class Raising:
    @hookimpl
    def ie_action_taken(self, app, ctx, verdict, outcome):
        raise RuntimeError("observer bug")

    @hookimpl
    def ie_event(self, app, event):
        raise RuntimeError("observer bug")


def test_observer_errors_are_logged_not_raised(make_app, caplog):
    app = make_app(plugins=[("raising", Raising())])
    ctx = a_message()
    caplog.set_level(logging.ERROR, logger="ie.plugins")
    app.hooks.action_taken(app, ctx, Verdict(Action.DELIVER), DELIVERED)
    app.hooks.event(app, an_event(1))
    assert [r.getMessage() for r in caplog.records] == [
        "event=plugin_error hook=ie_action_taken plugin=raising",
        "event=plugin_error hook=ie_event plugin=raising"]


class Recording:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.events: list[int] = []

    @hookimpl
    def ie_action_taken(self, ctx, outcome):  # a subset of the arguments, as pluggy allows
        self.outcomes.append(outcome)

    @hookimpl
    def ie_event(self, event):
        self.events.append(event.id)


def test_a_failing_observer_does_not_silence_the_others(make_app, caplog):
    recording = Recording()
    # pluggy calls the plugin registered last first: the raising one runs before
    app = make_app(plugins=[("recording", recording), ("raising", Raising())])
    ctx = a_message()
    caplog.set_level(logging.ERROR, logger="ie.plugins")
    app.hooks.action_taken(app, ctx, Verdict(Action.DELIVER), DELIVERED)
    app.hooks.event(app, an_event(7))
    assert (recording.outcomes, recording.events) == ([DELIVERED], [7])
    assert [r.getMessage() for r in caplog.records] == [
        "event=plugin_error hook=ie_action_taken plugin=raising",
        "event=plugin_error hook=ie_event plugin=raising"]
