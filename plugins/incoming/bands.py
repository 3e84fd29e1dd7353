"""Score bands for incoming mail (a decision: it sees the checks' verdict).

Below the junk threshold (``classify.incoming_threshold``) mail is delivered; from it on
the ``classify`` check asks for JUNK.  This stage adds two bands above that:

- ``incoming.greylist_threshold``: ``451 4.7.1`` on the first sight of each (client
  network, sender, recipient) triplet (:mod:`.greylist`); the MTA's retry after
  ``incoming.greylist_delay`` seconds goes on as junk;
- ``incoming.reject_threshold``: ``550 5.7.1`` at the end of DATA.

``0`` turns a band off (the default for both).  The bands apply only when every
recipient is filtered (no recipient whitelisted, opted out, nor filtering off): one reply
after DATA covers every recipient, and a 451 or 550 must not reach a recipient who is not
filtered.  A sender on the ``sender`` whitelist is never greylisted.  The score is the
verdict's (``X-IE-Filter-Score``); only a JUNK verdict is banded, so a message a check
already holds, refuses or defers keeps that verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ie_core import Action, App, Direction, Finding, MessageContext, Phase, Reply, Stage
from ie_core.runtime import RuntimeSetting, current
from ie_plugins.incoming.greylist import Greylist, client_network, envelope_sender
from ie_plugins.incoming.policy import STATE_KEY, IncomingState

NAME = "incoming-bands"
JUNK_SETTING = "classify.incoming_threshold"
REFUSED = Reply(550, "5.7.1 Message refused as spam")


def greylisted(seconds: int) -> Reply:
    return Reply(451, f"4.7.1 Greylisted, please try again in {seconds} seconds")


def thresholds_in_order(values: Mapping[str, Any]) -> str | None:
    """``junk <= greylist <= reject`` among the bands that are on, else the line that
    says which two are out of order."""
    bands = [("junk", JUNK_SETTING, values.get(JUNK_SETTING)),
             ("greylist", GREYLIST.name, values.get(GREYLIST.name)),
             ("reject", REJECT.name, values.get(REJECT.name))]
    on = [(band, name, float(v)) for band, name, v in bands
          if v is not None and (band == "junk" or float(v) > 0)]
    for (low, low_name, low_v), (high, high_name, high_v) in zip(on, on[1:], strict=False):
        if low_v > high_v:
            return (f"score thresholds out of order: {low} ({low_name}) {low_v:g} is above "
                    f"{high} ({high_name}) {high_v:g}; they must be junk <= greylist <= "
                    "reject (0 turns greylist or reject off)")
    return None


GREYLIST = RuntimeSetting(
    "incoming.greylist_threshold", float, 0.0,
    "Greylist incoming mail at or above this score (451 on the first sight of client "
    "network, sender and recipient; 0: off).", check=thresholds_in_order)
REJECT = RuntimeSetting(
    "incoming.reject_threshold", float, 0.0,
    "Refuse incoming mail at or above this score (550 after DATA; 0: off).",
    check=thresholds_in_order)
DELAY = RuntimeSetting(
    "incoming.greylist_delay", int, 300,
    "Seconds a greylisted triplet must wait before a retry is accepted.")
SETTINGS = (GREYLIST, REJECT, DELAY)


def band(app: App, greylist: Greylist, ctx: MessageContext) -> Finding | None:
    state = ctx.data.get(STATE_KEY)
    verdict = ctx.verdict
    if not isinstance(state, IncomingState) or verdict.action is not Action.JUNK:
        return None
    if not state.filtered or len(state.filtered) < len(state.recipients):
        return None
    score = verdict.score
    reject = float(current(app, REJECT))
    if 0 < reject <= score:
        return Finding(stage=NAME, reason="spam", action=Action.REJECT, reply=REFUSED,
                       detail=f"score {score:g} at or above the reject threshold {reject:g}")
    threshold = float(current(app, GREYLIST))
    if not 0 < threshold <= score:
        return None
    sender = envelope_sender(ctx.mail_from)
    if sender and app.hooks.is_whitelisted(app, "sender", sender):
        return None
    network = client_network(ctx)
    wait = greylist.wait(app, network, sender, [r.address for r in state.recipients],
                         int(current(app, DELAY)), ctx.received_at, dry_run=ctx.dry_run)
    if wait == 0:
        return None
    return Finding(stage=NAME, reason="greylist", action=Action.TEMPFAIL,
                   reply=greylisted(wait),
                   detail=f"score {score:g} in the greylist band ({threshold:g}); "
                          f"network={network} retry in {wait}s")


def make_stage(app: App) -> Stage:
    greylist = Greylist.from_app(app)
    return Stage(NAME, lambda ctx: band(app, greylist, ctx), frozenset({Direction.INCOMING}),
                 priority=400, phase=Phase.DECIDE,
                 description="score bands: greylist (451) or refuse (550) incoming spam")
