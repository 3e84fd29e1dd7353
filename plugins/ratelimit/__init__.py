"""Send limits (the Activity Monitor): every outgoing message is counted against its
account, domain, sender email and script over a sliding 60-minute window; a message
that would take any of them over its limit is held with reason ``ratelimit``.

The ``ratelimit`` stage is a decision (phase ``DECIDE``): it sees the checks' verdict,
so mail held or refused for other reasons does not use the allowance (it is recorded as
quarantined), and it runs after a whitelist bypass too (a whitelisted sender's mail
still counts against the limits; a whitelisted login's is counted, never held).  What
the stage counted is corrected by ``ie_action_taken`` when the message did not leave
after all (a downstream failure is retried by the MTA and must not count twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import click
from sqlalchemy import func, select

from ie_core import (
    Action,
    App,
    Bypass,
    ConfigKey,
    Direction,
    Finding,
    MessageContext,
    Outcome,
    Phase,
    Stage,
    StatusItem,
    Verdict,
    hookimpl,
)
from ie_core.background import BackgroundService, periodic
from ie_core.runtime import RuntimeSetting, current

from . import counter
from .autorelease import AUTO_RELEASE, AutoReleaser
from .cli import am
from .models import QUARANTINED, SENT, WAITING, RateHeld
from .objects import object_keys, read_ids
from .top import top

STAGE = "ratelimit"
REASON = "ratelimit"
_NOT_SENT = (Action.QUARANTINE, Action.REJECT, Action.TEMPFAIL)


def check(app: App, ctx: MessageContext) -> Finding | None:
    so_far = ctx.verdict
    if so_far.bypass is Bypass.ALL:
        return None  # a login the admin vouches for: counted, never held (ie_action_taken)
    keys = object_keys(ctx.identity)
    recipients = counter.distinct_recipients(ctx.rcpt_tos)
    if so_far.action in _NOT_SENT:
        if so_far.action is Action.QUARANTINE and not ctx.dry_run:
            ids, _ = counter.counting(app, keys, lambda ids: counter.record(
                app, ctx.id, ids, QUARANTINED, recipients))
            ctx.data[STAGE] = {"recorded": QUARANTINED, "object_ids": list(ids.values()),
                               "recipients": recipients}
        return None
    if ctx.dry_run:
        over = counter.dry_check(app, keys, read_ids(app, keys), recipients)
    else:
        ids, over = counter.counting(app, keys, lambda ids: counter.admit(
            app, ctx.id, ids, recipients, ctx.identity.account))
        ctx.data[STAGE] = {"recorded": QUARANTINED if over else SENT,
                           "object_ids": list(ids.values()), "recipients": recipients}
    if not over:
        return None
    return Finding(stage=STAGE, reason=REASON, action=Action.QUARANTINE,
                   detail="; ".join(o.describe() for o in over))


@hookimpl
def ie_stages(app: App) -> Sequence[Stage]:
    # a decision: it runs after a sender-whitelist bypass too, which skips the content
    # checks, never the account's own limit (the sender's objects are lifted by
    # limits.is_whitelisted)
    return [Stage(name=STAGE, run=lambda ctx: check(app, ctx),
                  directions=frozenset({Direction.OUTGOING}), priority=500,
                  phase=Phase.DECIDE,
                  description="hold mail over an hourly send limit (counts what leaves)")]


@hookimpl
def ie_action_taken(app: App, ctx: MessageContext, verdict: Verdict, outcome: Outcome) -> None:
    if ctx.direction is not Direction.OUTGOING:
        return
    state = ctx.data.get(STAGE)
    held = outcome.held_id is not None
    if state is None:
        if outcome.left and verdict.bypass is Bypass.ALL:
            recipients = counter.distinct_recipients(ctx.rcpt_tos)
            counter.counting(app, object_keys(ctx.identity), lambda ids: counter.record(
                app, ctx.id, ids, SENT, recipients, counted=False))
        return
    if state["recorded"] == SENT:
        if held:
            counter.relabel(app, ctx.id, QUARANTINED)
        elif not outcome.left:
            counter.forget(app, ctx.id)
    elif not held:
        counter.forget(app, ctx.id)
    elif verdict.reasons == [REASON]:
        with app.db.session() as s:
            s.add(RateHeld(held_id=outcome.held_id, message_id=ctx.id,
                           account=ctx.identity.account, object_ids=state["object_ids"],
                           recipients=state["recipients"], held_at=app.clock.now(),
                           state=WAITING, attempts=0))


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey("ratelimit", "auto_release_interval", float, 30.0,
                  "Seconds between auto-release passes (when auto-release is on)."),
        ConfigKey("ratelimit", "keep_days", int, 30,
                  "Days of send records kept for `am stats --since`."),
    ]


@hookimpl
def ie_runtime_settings() -> Sequence[RuntimeSetting]:
    return [AUTO_RELEASE]


@hookimpl
def ie_background(app: App) -> Sequence[BackgroundService]:
    releaser = AutoReleaser(app, timedelta(days=app.config.get("ratelimit.keep_days")))
    return [periodic("auto-release", app.config.get("ratelimit.auto_release_interval"),
                     releaser.step)]


@hookimpl
def ie_status(app: App) -> Sequence[StatusItem]:
    """Informational only: whether held mail goes out by itself once limits allow."""
    try:
        on = bool(current(app, AUTO_RELEASE))
        with app.db.session() as s:
            waiting = s.scalar(select(func.count()).select_from(RateHeld)
                               .where(RateHeld.state == WAITING)) or 0
    except Exception as err:  # the database item reports why
        return [StatusItem("send limits auto-release", False,
                           f"unknown ({type(err).__name__})", required=False)]
    return [StatusItem("send limits auto-release", True,
                       f"{'on' if on else 'off'}; {waiting} message(s) held for the send limit",
                       required=False)]


@hookimpl
def ie_cli_commands() -> Sequence[click.Command]:
    return [am, top]


@hookimpl
def ie_migration_locations() -> Sequence[str]:
    return [str(Path(__file__).parent / "migrations")]
