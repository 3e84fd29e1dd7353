"""Stage ``clamav``: every message scanned by a running clamd (Debian's ``clamav-daemon``),
once ``clamav.enabled = true`` (off by default: a host without clamd must not tempfail
all its mail because the plugin is installed).

Outgoing mail with a virus is held (reason ``virus``, the signature name in the detail);
incoming mail with one is refused with ``554 5.7.1`` or, with ``clamav.incoming_action =
"hold"``, held in the server's quarantine.  clamd down, refusing or too slow: outgoing mail
is tempfailed (451, the MTA retries), incoming mail too unless
``clamav.incoming_unavailable = "accept"``.  A message over ``clamav.max_stream`` (or
clamd's own ``StreamMaxLength``) is never passed silently: ``clamav.too_large`` holds it
(reason ``unscanned``), tempfails it, or lets it through with a log line.
See docs/antivirus.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ie_core import (
    Action,
    App,
    ConfigError,
    ConfigKey,
    Direction,
    Finding,
    MessageContext,
    Reply,
    Stage,
    StatusItem,
    hookimpl,
)
from ie_plugins.clamav import clamd

log = logging.getLogger("ie.clamav")

STAGE = "clamav"
REASON = "virus"
UNSCANNED = "unscanned"
PRIORITY = 150  # before the whitelist: a whitelisted sender's mail is scanned too
UNAVAILABLE = Reply(451, "4.7.1 Virus scanner unavailable, try again later")
TOO_LARGE = Reply(451, "4.7.1 Message too large for the virus scanner, try again later")
CHOICES = {"incoming_action": ("reject", "hold"),
           "incoming_unavailable": ("tempfail", "accept"),
           "too_large": ("hold", "tempfail", "accept")}


@dataclass(frozen=True)
class Settings:
    address: clamd.Address
    timeout: float
    max_stream: int
    incoming_action: str
    incoming_unavailable: str
    too_large: str

    @classmethod
    def from_app(cls, app: App) -> Settings:
        """The configuration, checked (a bad value is one ConfigError at start)."""
        try:
            address = clamd.Address.parse(app.config.get("clamav.address"))
        except ValueError as err:
            raise ConfigError(f"clamav.address: {err}") from None
        for key, allowed in CHOICES.items():
            if app.config.get(f"clamav.{key}") not in allowed:
                raise ConfigError(f"clamav.{key} must be one of {', '.join(allowed)}")
        timeout, max_stream = app.config.get("clamav.timeout"), app.config.get("clamav.max_stream")
        if timeout <= 0 or max_stream < 1:
            raise ConfigError("clamav.timeout and clamav.max_stream must be positive")
        return cls(address, float(timeout), int(max_stream),
                   app.config.get("clamav.incoming_action"),
                   app.config.get("clamav.incoming_unavailable"),
                   app.config.get("clamav.too_large"))


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey(STAGE, "enabled", bool, False,
                  "Scan every message with clamd (it must be running: while it cannot "
                  "scan, mail is tempfailed)."),
        ConfigKey(STAGE, "address", str, "unix:/var/run/clamav/clamd.ctl",
                  "Where clamd listens: unix:/PATH (Debian's LocalSocket) or HOST:PORT "
                  "(its TCPSocket)."),
        ConfigKey(STAGE, "timeout", float, 30.0,
                  "Seconds to wait for clamd (connecting, sending, its answer)."),
        ConfigKey(STAGE, "max_stream", int, 26214400,
                  "Largest message sent to clamd, in bytes; keep it at or below clamd's "
                  "StreamMaxLength (25M on Debian). Larger ones get clamav.too_large."),
        ConfigKey(STAGE, "incoming_action", str, "reject",
                  "Incoming mail with a virus: reject (554, the sender is told) or hold "
                  "(the server's quarantine)."),
        ConfigKey(STAGE, "incoming_unavailable", str, "tempfail",
                  "Incoming mail while clamd cannot scan: tempfail (451, the sending "
                  "server retries) or accept (delivered unscanned, logged)."),
        ConfigKey(STAGE, "too_large", str, "hold",
                  "Mail too large to scan: hold (reason unscanned), tempfail, or accept "
                  "(delivered unscanned, logged)."),
    ]


@hookimpl
def ie_stages(app: App) -> Sequence[Stage]:
    if not app.config.get("clamav.enabled"):
        return []
    settings = Settings.from_app(app)  # a bad configuration stops ie-filterd at start
    return [Stage(name=STAGE, run=lambda ctx: check(settings, ctx), priority=PRIORITY,
                  description="scan for viruses with clamd")]


@hookimpl
def ie_status(app: App) -> Sequence[StatusItem]:
    if not app.config.get("clamav.enabled"):
        return []
    try:
        settings = Settings.from_app(app)
        return [StatusItem("antivirus", True, f"clamd at {settings.address}: "
                           f"{clamd.version(settings.address, min(settings.timeout, 5.0))}")]
    except (ConfigError, clamd.ClamdUnavailable) as err:
        return [StatusItem("antivirus", False, str(err))]


def check(settings: Settings, ctx: MessageContext) -> Finding | None:
    """The stage: a ``virus`` finding, a hold or tempfail for mail that could not be
    scanned, an informational finding for mail let through unscanned, or ``None``."""
    outgoing = ctx.direction is Direction.OUTGOING
    if len(ctx.raw) > settings.max_stream:
        return _too_large(settings, ctx, f"{len(ctx.raw)} bytes, over clamav.max_stream")
    try:
        result = clamd.scan(settings.address, ctx.raw, settings.timeout)
    except clamd.StreamTooLarge:
        return _too_large(settings, ctx, f"{len(ctx.raw)} bytes, over clamd's StreamMaxLength")
    except clamd.ClamdUnavailable as err:
        log.warning("event=clamd_unavailable msgid=%s direction=%s error=%s", ctx.id,
                    ctx.direction.value, err)
        if not outgoing and settings.incoming_unavailable == "accept":
            return Finding(stage=STAGE, detail=f"not scanned: {err}")
        return Finding(stage=STAGE, action=Action.TEMPFAIL, detail=str(err),
                       reply=UNAVAILABLE)
    if result.signature is None:
        return None
    log.info("event=virus_found msgid=%s direction=%s signature=%s", ctx.id,
             ctx.direction.value, result.signature)
    if outgoing or settings.incoming_action == "hold":
        return Finding(stage=STAGE, reason=REASON, action=Action.QUARANTINE,
                       detail=result.signature, final=True)
    return Finding(stage=STAGE, reason=REASON, action=Action.REJECT, detail=result.signature,
                   final=True, reply=Reply(554, f"5.7.1 Virus found: {result.signature}"))


def _too_large(settings: Settings, ctx: MessageContext, why: str) -> Finding:
    log.warning("event=clamav_too_large msgid=%s direction=%s policy=%s size=%d", ctx.id,
                ctx.direction.value, settings.too_large, len(ctx.raw))
    if settings.too_large == "hold":
        return Finding(stage=STAGE, reason=UNSCANNED, action=Action.QUARANTINE,
                       detail=f"not scanned: {why}")
    if settings.too_large == "tempfail":
        return Finding(stage=STAGE, action=Action.TEMPFAIL, detail=f"not scanned: {why}",
                       reply=TOO_LARGE)
    return Finding(stage=STAGE, detail=f"not scanned: {why}")
