"""Stage ``winexec``: Windows executables in mail, by content and by file name.

Outgoing mail with an executable is held in the quarantine (reason ``winexec``); incoming
mail gets ``winexec.incoming_action`` (reject by default).  Attached messages and zip,
tar, gzip, bzip2 and xz archives are looked into, within bounds; what cannot be looked
into is allowed or held as the run-time setting ``winexec.unopenable_archives`` says, and
what a scan bound stopped is held unless ``winexec.scan_limits`` allows it (a sender who
hides an executable past the bounds must not get it out).
See docs/winexec.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from ie_core import (
    Action,
    App,
    ConfigError,
    ConfigKey,
    Direction,
    Finding,
    MessageContext,
    Stage,
    hookimpl,
)
from ie_core.runtime import RuntimeSetting, current
from ie_plugins.winexec.content import Limits
from ie_plugins.winexec.names import normalise_extensions
from ie_plugins.winexec.scan import describe, scan

STAGE = "winexec"
REASON = "winexec"
PRIORITY = 300
MAX_DEPTH_ALLOWED = 64

DEFAULT_EXTENSIONS = [".exe", ".scr", ".com", ".pif", ".cpl", ".bat", ".cmd", ".js", ".jse",
                      ".vbs", ".vbe", ".wsf", ".wsh", ".hta", ".lnk", ".ps1", ".msi", ".jar"]
INCOMING_ACTIONS = {"junk": Action.JUNK, "quarantine": Action.QUARANTINE,
                    "reject": Action.REJECT}

ALLOW_OUTGOING = RuntimeSetting(
    "winexec.allow_outgoing", bool, False,
    "Let outgoing mail carry Windows executables (no winexec hold).")
ALLOW_INCOMING = RuntimeSetting(
    "winexec.allow_incoming", bool, False,
    "Let incoming mail carry Windows executables (winexec.incoming_action is not applied).")
UNOPENABLE_ARCHIVES = RuntimeSetting(
    "winexec.unopenable_archives", str, "allow",
    "What to do with mail whose archives cannot be looked into (encrypted, rar, 7z, "
    "corrupt): allow it, or hold it as winexec.",
    choices=("allow", "hold"))
SCAN_LIMITS = RuntimeSetting(
    "winexec.scan_limits", str, "hold",
    "What to do with mail that a scan bound stopped before it was looked at whole (more "
    "parts or archive members than max_entries, nested deeper than max_depth, more than "
    "max_total_bytes, a file over max_member_size): hold it as winexec, or allow it.",
    choices=("hold", "allow"))


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey(STAGE, "extensions", list, DEFAULT_EXTENSIONS,
                  "File name endings treated as executables whatever the content."),
        ConfigKey(STAGE, "incoming_action", str, "reject",
                  "Incoming mail with an executable: reject (550, the sender is told), "
                  "quarantine or junk."),
        ConfigKey(STAGE, "max_depth", int, 16,
                  "Containers looked into inside each other (multipart sections, attached "
                  "messages, archives); deeper ones are uninspected. 1 to 64."),
        ConfigKey(STAGE, "max_entries", int, 2000,
                  "MIME parts and archive members looked at per message; the rest are "
                  "uninspected."),
        ConfigKey(STAGE, "max_total_bytes", int, 104857600,
                  "Decoded and decompressed bytes read per message, all files together."),
        ConfigKey(STAGE, "max_member_size", int, 26214400,
                  "Largest file (decoded attachment, archive member) read whole to look "
                  "inside it; a larger archive is uninspected."),
    ]


@hookimpl
def ie_runtime_settings() -> Sequence[RuntimeSetting]:
    return [ALLOW_OUTGOING, ALLOW_INCOMING, UNOPENABLE_ARCHIVES, SCAN_LIMITS]


@hookimpl
def ie_stages(app: App) -> Sequence[Stage]:
    _limits(app)  # a bad configuration stops the daemon at start, not one message later
    _incoming_action(app)
    _extensions(app)
    return [Stage(name=STAGE, run=lambda ctx: check(app, ctx), priority=PRIORITY,
                  description="hold Windows executables, also inside archives")]


def check(app: App, ctx: MessageContext) -> Finding | None:
    """The stage: a ``winexec`` finding, an informational one (something could not be
    looked into and that is allowed), or ``None``."""
    outgoing = ctx.direction is Direction.OUTGOING
    if current(app, ALLOW_OUTGOING if outgoing else ALLOW_INCOMING):
        return None
    action = Action.QUARANTINE if outgoing else _incoming_action(app)
    report = scan(ctx.raw, _extensions(app), _limits(app))
    if report.hits:
        return Finding(stage=STAGE, reason=REASON, action=action,
                       detail=describe(report.hits, len(report.hits)))
    if not report.uninspected:
        return None
    bounded, unopenable = report.bounded, report.unopenable
    if bounded and current(app, SCAN_LIMITS) == "hold":
        return Finding(stage=STAGE, reason=REASON, action=action,
                       detail="scan bound reached: " + describe(bounded, len(bounded)))
    if unopenable and current(app, UNOPENABLE_ARCHIVES) == "hold":
        return Finding(stage=STAGE, reason=REASON, action=action,
                       detail=describe(unopenable, len(unopenable)))
    return Finding(stage=STAGE, detail=describe(report.uninspected, report.uninspected_count))


def _limits(app: App) -> Limits:
    limits = Limits(max_depth=app.config.get("winexec.max_depth"),
                    max_entries=app.config.get("winexec.max_entries"),
                    max_total_bytes=app.config.get("winexec.max_total_bytes"),
                    max_member_size=app.config.get("winexec.max_member_size"))
    if not 1 <= limits.max_depth <= MAX_DEPTH_ALLOWED:
        raise ConfigError(f"winexec.max_depth must be between 1 and {MAX_DEPTH_ALLOWED}")
    for name in ("max_entries", "max_total_bytes", "max_member_size"):
        if getattr(limits, name) < 1:
            raise ConfigError(f"winexec.{name} must be positive")
    return limits


def _extensions(app: App) -> tuple[str, ...]:
    configured = app.config.get("winexec.extensions")
    if not all(isinstance(e, str) for e in configured):
        raise ConfigError("winexec.extensions must be a list of strings such as \".exe\"")
    return normalise_extensions(configured)


def _incoming_action(app: App) -> Action:
    name = app.config.get("winexec.incoming_action")
    if name not in INCOMING_ACTIONS:
        raise ConfigError(f"winexec.incoming_action must be one of "
                          f"{', '.join(INCOMING_ACTIONS)}, not {name!r}")
    return INCOMING_ACTIONS[name]
