"""Incoming quarantine: a copy scoring at or above ``incoming.quarantine_threshold`` is
held for its recipients' account instead of delivered (docs/incoming.md).

The decision is per recipient: only recipients the message is filtered for (see
:mod:`.policy`: not whitelisted, account not opted out) whose account has not turned
incoming quarantine off (``accounts edit --incoming-quarantine off``) are held.  Each
account's recipients become one delivery group marked ``hold_for=ACCOUNT``; core delivers
the other groups and holds these through the quarantine (``ie_hold``), each copy naming
only its own recipients and charged to its own account's storage limit.
"""

from __future__ import annotations

from ie_core import Action, App, Direction, Finding, MessageContext, Phase, Stage
from ie_core.account_options import AccountOption
from ie_core.message import DeliveryGroup
from ie_core.runtime import RuntimeSetting, current
from ie_plugins.incoming.policy import STATE_KEY, IncomingState

THRESHOLD = RuntimeSetting(
    "incoming.quarantine_threshold", float, 0.0,
    "Hold incoming mail scoring at or above this many points in the recipient account's "
    "quarantine instead of delivering it (0: never; an account may turn it off).")
HOLD_PRIORITY = 600  # a decoration after incoming-mark, which splits the junk groups


def _key(account: str) -> str:
    return f"incoming.quarantine:{account}"


def account_enabled(app: App, account: str) -> bool:
    """Incoming quarantine is on for an account unless it was turned off for it."""
    return app.settings.get(_key(account)) != "off"


def _get(app: App, account: str) -> str:
    return "on" if account_enabled(app, account) else "off"


def _set(app: App, account: str, value: str) -> None:
    app.settings.set(_key(account), None if value == "on" else "off")


ACCOUNT_SWITCH = AccountOption(
    "incoming-quarantine", ("on", "off"),
    "hold this account's incoming mail above incoming.quarantine_threshold (on) or only "
    "mark it for Junk (off)", _get, _set)


def split_holds(app: App, ctx: MessageContext, threshold: float) -> dict[str, list[str]]:
    """account -> the recipients (as the envelope gave them) whose copy is held."""
    state = ctx.data.get(STATE_KEY)
    verdict = ctx.verdict
    if (threshold <= 0 or not isinstance(state, IncomingState)
            or verdict.action not in (Action.DELIVER, Action.JUNK)
            or verdict.bypass is not None or verdict.score < threshold):
        return {}
    held: dict[str, list[str]] = {}
    for recipient in state.filtered:
        if account_enabled(app, recipient.account):
            held.setdefault(recipient.account, []).append(recipient.rcpt)
    return held


def make_stage(app: App) -> Stage:
    def hold(ctx: MessageContext) -> Finding | None:
        held = split_holds(app, ctx, float(current(app, THRESHOLD)))
        if not held:
            return None
        rcpts = {r for group in held.values() for r in group}
        rest = [DeliveryGroup([r for r in g.rcpt_tos if r not in rcpts], g.headers)
                for g in ctx.delivery_groups()]
        ctx.groups = ([DeliveryGroup(group, hold_for=account)
                       for account, group in sorted(held.items())]
                      + [g for g in rest if g.rcpt_tos])
        return None

    return Stage("incoming-hold", hold, frozenset({Direction.INCOMING}), phase=Phase.DECORATE,
                 priority=HOLD_PRIORITY,
                 description="hold the copies of recipients whose account quarantines "
                             "incoming mail above incoming.quarantine_threshold")
