"""The ``blocklist`` check, first of the checks (priority 120) in both directions.

Incoming: the envelope sender and every address of every From field
(:mod:`.matching`) against the ``sender`` list, the server's entries and those of each
recipient's account.  A recipient is *refused* when an entry that holds for it says
``refuse`` (an entry without an action follows ``blocklist.sender_action``), else
*junked* when one holds.  One reply after DATA covers every recipient, so the message is
refused (``550 5.7.1``, final) only when every recipient is refused; when only some are
blocked, or the entries say junk, it is marked for Junk (the ``incoming`` plugin marks the
copies of the filtered recipients).

Outgoing: every recipient against the ``recipient`` list, the server's entries and
those of the sending account; one blocked recipient refuses the message (``550 5.7.1``,
final), so the account's MTA bounces it to the sender with the reason.
"""

from __future__ import annotations

from ie_core import (
    Action,
    App,
    Direction,
    Finding,
    MessageContext,
    Reply,
    SenderIdentity,
    Stage,
)
from ie_core.identity import domain_of, normalise_address
from ie_core.rawheaders import values as header_values
from ie_core.runtime import RuntimeSetting, current

from . import store
from .matching import candidates, header_addresses
from .models import JUNK, RECIPIENT, REFUSE, SENDER

NAME = "blocklist"
SENDER_ACTION = RuntimeSetting(
    "blocklist.sender_action", str, REFUSE,
    "What a blocked sender's incoming mail gets when its entry names no action: refuse "
    "(550) or junk.", choices=(REFUSE, JUNK))
SENDER_REFUSED = Reply(550, "5.7.1 Sender blocked by policy")
RECIPIENT_REFUSED = Reply(550, "5.7.1 Recipient blocked by policy")


def recipient_account(app: App, address: str) -> str:
    identity = SenderIdentity(domain=domain_of(address), sender_email=address)
    return app.hooks.resolve_account(app, identity) or "root"


def check_incoming(app: App, ctx: MessageContext) -> Finding | None:
    senders = [ctx.mail_from, *header_addresses(header_values(ctx.raw, "From"))]
    found = store.matching(app, SENDER, candidates(senders))
    if not found:  # the usual case: one read, no account looked up
        return None
    rcpts = [normalise_address(r) or r for r in ctx.rcpt_tos]
    accounts = {r: recipient_account(app, r) for r in rcpts}
    default = current(app, SENDER_ACTION)
    refused, blocked = 0, []
    for rcpt in rcpts:
        holding = [e for e in found if e.account in ("", accounts[rcpt])]  # its scopes
        if holding:
            blocked.append(rcpt)
        if any((e.action or default) == REFUSE for e in holding):
            refused += 1
    if not blocked:
        return None
    entries = ", ".join(sorted({e.value for e in found if e.account in
                                {"", *(accounts[r] for r in blocked)}}))
    if refused == len(rcpts):
        return Finding(stage=NAME, reason="blocklist", action=Action.REJECT, final=True,
                       reply=SENDER_REFUSED, detail=f"sender blocked: {entries}")
    return Finding(stage=NAME, reason="blocklist", action=Action.JUNK,
                   detail=f"sender blocked for {len(blocked)} of {len(rcpts)} "
                          f"recipients: {entries}")


def check_outgoing(app: App, ctx: MessageContext) -> Finding | None:
    found = store.matching(app, RECIPIENT, candidates(ctx.rcpt_tos), [ctx.identity.account])
    if not found:
        return None
    entries = ", ".join(sorted({e.value for e in found}))
    return Finding(stage=NAME, reason="blocklist", action=Action.REJECT, final=True,
                   reply=Reply(550, f"{RECIPIENT_REFUSED.text}: {entries}"[:300]),
                   detail=f"recipient blocked: {entries}")


def make_stage(app: App) -> Stage:
    def run(ctx: MessageContext) -> Finding | None:
        if ctx.direction is Direction.INCOMING:
            return check_incoming(app, ctx)
        return check_outgoing(app, ctx)

    return Stage(NAME, run, priority=120,
                 description="blocked senders (incoming) and recipients (outgoing): "
                             "refuse or junk")
