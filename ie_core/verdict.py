"""Findings that stages return, and the verdict the policy step makes of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ie_core.replies import Reply


class Direction(StrEnum):
    """Which listener the MTA handed the message to."""

    OUTGOING = "outgoing"
    INCOMING = "incoming"


class Bypass(StrEnum):
    """What a whitelist finding lets a message skip (it also ends the check phase)."""

    CONTENT = "content"
    """The content checks: the send limits still apply (a whitelisted sender)."""
    ALL = "all"
    """Every hold: the send limits only count the message (a whitelisted login)."""


class Action(StrEnum):
    """What happens to a message.  Ordered from mildest to most severe."""

    DELIVER = "deliver"
    JUNK = "junk"  # deliver, marked as spam (incoming: Sieve files it into Junk)
    QUARANTINE = "quarantine"
    REJECT = "reject"
    TEMPFAIL = "tempfail"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {a: i for i, a in enumerate(Action)}


def _reply_fits(action: Action, reply: Reply) -> bool:
    if action is Action.REJECT:
        return reply.permanent
    return action is Action.TEMPFAIL and 400 <= reply.code < 500


@dataclass(frozen=True)
class Finding:
    """One stage's opinion of a message.

    ``reason`` is the short code that ends up in the quarantine's reasons list
    (``spam``, ``winexec``, ``ratelimit``, ``blocked`` ...); ``None`` for a finding that
    only contributes a score or ends the checks (a whitelist bypass).  ``action`` is the
    action this finding asks for; the policy step takes the most severe one asked.
    ``final`` ends the check phase after this stage (later checks do not run; decisions
    and decorations still do).  ``bypass`` marks a whitelist finding (it is final).
    ``reply`` is the SMTP reply the MTA gets when this finding's action (``REJECT`` or
    ``TEMPFAIL``) decides the message (a greylisting ``451 4.7.1``, a blocklist
    ``550 5.7.1``); ``None`` gives the generic one.  Its class must match the action: a
    4xx for TEMPFAIL, a 5xx for REJECT.
    """

    stage: str
    reason: str | None = None
    score: float = 0.0
    action: Action = Action.DELIVER
    detail: str = ""
    final: bool = False
    bypass: Bypass | None = None
    reply: Reply | None = None

    def __post_init__(self) -> None:
        if self.reply is not None and not _reply_fits(self.action, self.reply):
            raise ValueError(f"a {self.action.value} finding cannot reply {self.reply.code}")

    @property
    def ends_checks(self) -> bool:
        return self.final or self.bypass is not None


@dataclass
class Verdict:
    """The outcome of the pipeline for one message."""

    action: Action
    findings: list[Finding] = field(default_factory=list)
    score: float = 0.0
    smtp_reply: Reply | None = None  # set for REJECT/TEMPFAIL: the reply the MTA gets
    error: str | None = None
    """Set when the verdict is a TEMPFAIL because something failed (a stage raised, the
    sender could not be identified), not because a stage asked for it: what failed."""

    @property
    def reasons(self) -> list[str]:
        seen: list[str] = []
        for f in self.findings:
            if f.reason and f.reason not in seen:
                seen.append(f.reason)
        return seen

    @property
    def hits(self) -> list[str]:
        """Names of the stages that returned a finding with a reason or a score."""
        return [f.stage for f in self.findings if f.reason or f.score]

    @property
    def bypass(self) -> Bypass | None:
        """The widest whitelist bypass any finding grants (``ALL`` over ``CONTENT``)."""
        granted = {f.bypass for f in self.findings if f.bypass is not None}
        if Bypass.ALL in granted:
            return Bypass.ALL
        return Bypass.CONTENT if granted else None


class Result(StrEnum):
    """What was done with a message."""

    DELIVERED = "delivered"
    HELD = "held"
    REJECTED = "rejected"
    TEMPFAILED = "tempfailed"
    REJECTED_DOWNSTREAM = "rejected_downstream"
    """The downstream MTA refused it for good (the client gets its 5xx)."""
    TEMPFAILED_DOWNSTREAM = "tempfailed_downstream"
    """The downstream MTA deferred it (the client gets its 4xx and retries)."""


@dataclass(frozen=True)
class Outcome:
    """What was done with a message, and the held id when it was held.

    ``str(outcome)`` is the form in the message log and the log line: the result's
    value, or ``held:<id>``.
    """

    result: Result
    held_id: str | None = None

    def __post_init__(self) -> None:
        if (self.result is Result.HELD) != (self.held_id is not None):
            raise ValueError("an outcome has a held id exactly when the message was held")

    @classmethod
    def held(cls, held_id: str) -> Outcome:
        return cls(Result.HELD, held_id)

    @classmethod
    def parse(cls, text: str) -> Outcome:
        """The outcome ``str(outcome)`` wrote (ValueError for anything else)."""
        result, sep, held_id = text.partition(":")
        return cls(Result(result), held_id if sep else None)

    @property
    def left(self) -> bool:
        """Did the message leave (accepted downstream for every recipient)?"""
        return self.result is Result.DELIVERED

    def __str__(self) -> str:
        return f"held:{self.held_id}" if self.result is Result.HELD else self.result.value
