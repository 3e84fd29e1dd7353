"""Findings that stages return, and the verdict the policy step makes of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Direction(StrEnum):
    """Which listener the MTA handed the message to."""

    OUTGOING = "outgoing"
    INCOMING = "incoming"


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


@dataclass(frozen=True)
class Finding:
    """One stage's opinion of a message.

    ``reason`` is the short code that ends up in the quarantine's reasons list
    (``spam``, ``winexec``, ``ratelimit``, ``blocked`` ...); ``None`` for a finding that
    only contributes a score or ends the pipeline (a whitelist bypass).  ``action`` is the
    action this finding asks for; the policy step takes the most severe one asked.
    ``final`` stops the pipeline after this stage (later stages do not run).
    """

    stage: str
    reason: str | None = None
    score: float = 0.0
    action: Action = Action.DELIVER
    detail: str = ""
    final: bool = False


@dataclass
class Verdict:
    """The outcome of the pipeline for one message."""

    action: Action
    findings: list[Finding] = field(default_factory=list)
    score: float = 0.0
    smtp_reply: str | None = None  # set for REJECT/TEMPFAIL: the reply the MTA gets
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
