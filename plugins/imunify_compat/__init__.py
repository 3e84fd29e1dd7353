"""Imunify Email's filter headers on the mail ie lets through, for sites whose Sieve rules
or monitoring look for them (``imunify.headers``, off by default).

A decoration (it sees the final verdict): ``X-ImunifyEmail-Filter-Action`` in rspamd's
words (``no action``, ``add header``, ``reject``, ``soft reject``) and
``X-ImunifyEmail-Filter-Score``.  Copies a sender wrote are removed first, so nothing
outside can make mail look filtered.  ie's own ``X-IE-Filter-*`` headers are written
either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from ie_core import Action, App, ConfigKey, MessageContext, Phase, Stage, hookimpl

ACTION_HEADER = "X-ImunifyEmail-Filter-Action"
SCORE_HEADER = "X-ImunifyEmail-Filter-Score"
RSPAMD_ACTION = {Action.DELIVER: "no action", Action.JUNK: "add header",
                 Action.QUARANTINE: "reject", Action.REJECT: "reject",
                 Action.TEMPFAIL: "soft reject"}


def decorate(app: App, ctx: MessageContext) -> None:
    if not app.config.get("imunify.headers"):
        return
    verdict = ctx.verdict
    for name in (ACTION_HEADER, SCORE_HEADER):
        ctx.remove_header(name)
    ctx.add_header(ACTION_HEADER, RSPAMD_ACTION[verdict.action])
    ctx.add_header(SCORE_HEADER, f"{verdict.score:.2f}")


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [ConfigKey("imunify", "headers", bool, False,
                      "Write Imunify Email's X-ImunifyEmail-Filter-Action and -Score headers "
                      "on mail that passes (for Sieve rules written for Imunify Email).")]


@hookimpl
def ie_stages(app: App) -> Sequence[Stage]:
    def run(ctx: MessageContext) -> None:
        decorate(app, ctx)

    return [Stage("imunify-headers", run, phase=Phase.DECORATE, priority=900,
                  description="Imunify Email's filter headers (imunify.headers)")]
