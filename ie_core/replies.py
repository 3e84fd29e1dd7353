"""Every SMTP reply ie-filterd gives of its own (the downstream's replies are passed on).

The reply rule (DESIGN.md): ``250`` only once the message is delivered downstream or
durably held; anything that goes wrong on our side is a ``4xx``, so the MTA keeps the
message.  A ``5xx`` of our own is given only for a policy refusal or a message the client
can never send as it is (too big, a line too long, a non-ASCII address without SMTPUTF8).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    def __str__(self) -> str:
        text = " ".join(self.text.split()) or "-"
        return f"{self.code} {text}"[:510]


# The message: what the pipeline decided, and failures on our side.
TEMPFAIL = Reply(451, "4.3.0 Temporary filter failure, try again later")
REJECT = Reply(550, "5.7.1 Message refused by policy")
INTERNAL_ERROR = Reply(451, "4.3.0 Internal filter error, try again later")
HOLD_FAILED = Reply(451, "4.3.0 Cannot hold message safely, try again later")

# The session: the protocol, limits, and aiosmtpd's own wording replaced.
SENDER_OK = Reply(250, "2.1.0 Ok")
OK = Reply(250, "2.0.0 Ok")
BYE = Reply(221, "2.0.0 Bye")
START_DATA = Reply(354, "End data with <CR><LF>.<CR><LF>")
NEED_RCPT = Reply(503, "5.5.1 Error: need RCPT command")
DATA_SYNTAX = Reply(501, "5.5.4 Syntax: DATA")
TOO_BIG = Reply(552, "5.3.4 Message size exceeds fixed maximum message size")
TOO_MANY_SESSIONS = Reply(421, "4.3.2 Too many sessions, try again later")
LINE_TOO_LONG = Reply(500, "5.5.2 Line too long")
NEEDS_SMTPUTF8 = Reply(553, "5.6.7 Non-ASCII address requires SMTPUTF8")

# Reinjection failures (the downstream's own replies are passed on as they are).
UNREACHABLE = Reply(451, "4.4.1 Reinjection MTA not reachable, try again later")
TIMED_OUT = Reply(451, "4.4.2 Reinjection MTA timed out, try again later")
BROKEN = Reply(451, "4.4.2 Reinjection connection lost, try again later")
CHANGED = Reply(451, "4.3.0 Reinjection MTA refused a recipient it had accepted, "
                     "try again later")
NO_ANSWER = {UNREACHABLE: "unreachable", TIMED_OUT: "timeout", BROKEN: "broken"}
"""Our replies for a reinjection MTA that gave none, and what happened (for the metrics)."""


def delivered(message_id: str) -> Reply:
    return Reply(250, f"2.0.0 Ok: delivered as {message_id}")


def held(held_id: str) -> Reply:
    return Reply(250, f"2.0.0 Ok: held as {held_id}")


def delivered_before(message_id: str) -> Reply:
    """An MTA's retry of a message that was delivered (see ``processor.duplicate_reply``)."""
    return Reply(250, f"2.0.0 Ok: delivered as {message_id} (duplicate not sent again)")


def held_before(held_id: str) -> Reply:
    """An MTA's retry of a message that was held."""
    return Reply(250, f"2.0.0 Ok: held as {held_id} (duplicate not held again)")
