"""Incoming filtering: junk routing through Dovecot Sieve, learning from Junk moves.

See docs/incoming.md.  The policy stages live in :mod:`.policy`, the Dovecot/Sieve writer
in :mod:`.dovecot`, the learn spool in :mod:`.spool`, the daily counts in :mod:`.stats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

import click

from ie_core import (
    App,
    ConfigKey,
    Direction,
    MessageContext,
    Outcome,
    Stage,
    StatusItem,
    Verdict,
    hookimpl,
)
from ie_core.account_options import AccountOption
from ie_core.background import BackgroundService
from ie_core.runtime import RuntimeSetting
from ie_plugins.incoming import (
    bands,
    cli,
    dovecot,
    greylist,
    hold,
    policy,
    retention,
    spool,
    stats,
)


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey("incoming", "dovecot_config", str, "/etc/dovecot/dovecot.conf",
                  "Dovecot's main configuration (for doveconf, sievec and doveadm -c)."),
        ConfigKey("incoming", "dovecot_conf_d", str, "/etc/dovecot/conf.d",
                  "Directory Dovecot includes, where enable-incoming writes its snippet."),
        ConfigKey("incoming", "dovecot_modules", str, "/usr/lib/dovecot/modules",
                  "Dovecot's module directory (checked for the Pigeonhole plugins)."),
        ConfigKey("incoming", "sieve_dir", str, "/etc/dovecot/sieve-ie",
                  "Where the Sieve scripts (and, unless Dovecot has one, the pipe directory "
                  "bin/) are written."),
        ConfigKey("incoming", "learn_spool", str, "",
                  "Spool where IMAPSieve queues reported messages for learning; empty: "
                  "learn/ in ie.data_dir, so two instances on a host never share one. An "
                  "absolute path of letters, digits and . _ / - only."),
        ConfigKey("incoming", "mail_user", str, "mail",
                  "The user Dovecot delivers mail as (it writes into the learn spool)."),
        ConfigKey("incoming", "spam_header", str, "X-Spam: Yes",
                  "Header written on junk copies besides X-IE-Junk, for existing Sieve "
                  "rules ('Name: value'; empty: none)."),
        ConfigKey("incoming", "junk_mailbox", str, "Junk",
                  "The Junk folder's name: letters, digits, spaces and . _ - / + only."),
        ConfigKey("incoming", "trash_mailbox", str, "Trash",
                  "The Trash folder's name (moving spam there trains nothing)."),
        ConfigKey("incoming", "learn_max_bytes", int, 10485760,
                  "Largest reported message that is learned, in bytes."),
        ConfigKey("incoming", "learn_max_queued", int, 1000,
                  "Reports queued at most; further ones are dropped until the spool drains."),
        ConfigKey("incoming", "learn_interval", float, 2.0,
                  "Seconds between two reads of the learn spool by ie-filterd."),
        ConfigKey("incoming", "greylist_retry_window", int, 172800,
                  "Seconds a greylisted first sight waits for its retry before it is "
                  "forgotten."),
        ConfigKey("incoming", "greylist_pass_ttl", int, 3110400,
                  "Seconds a triplet that passed greylisting stays passed after it was "
                  "last seen."),
        ConfigKey("incoming", "junk_retention_by", str, "saved",
                  "Junk retention counts a message's age from when it was saved into Junk "
                  "(saved: doveadm's savedbefore) or from its IMAP internal date "
                  "(received: before)."),
        ConfigKey("incoming", "junk_retention_interval", float, 86400.0,
                  "Seconds between two Junk retention runs by ie-filterd."),
        ConfigKey("incoming", "trainers", str, "",
                  "Who may train the classifier by moving mail into or out of Junk: "
                  "IMAP user names and %unixgroup entries, separated by commas or spaces "
                  "(empty: every user)."),
    ]


@hookimpl
def ie_runtime_settings() -> Sequence[RuntimeSetting]:
    return [policy.ENABLED, policy.SUBJECT_PREFIX, *bands.SETTINGS, hold.THRESHOLD,
            retention.DAYS]


@hookimpl
def ie_stages(app: App) -> Sequence[Stage]:
    dovecot.check_settings(app)  # an unsafe folder name stops ie-filterd at start
    return [*policy.make_stages(app), bands.make_stage(app), hold.make_stage(app)]


@hookimpl
def ie_action_taken(app: App, ctx: MessageContext, verdict: Verdict, outcome: Outcome) -> None:
    state = ctx.data.get(policy.STATE_KEY)
    if ctx.direction is not Direction.INCOMING or not outcome.left or ctx.dry_run:
        return
    if isinstance(state, policy.IncomingState):
        stats.record(app, state, ctx.received_at.astimezone(UTC).date())


@hookimpl
def ie_status(app: App) -> Sequence[StatusItem]:
    if not policy.is_enabled(app):
        return [StatusItem("incoming filtering", True, "off", required=False)]
    layout = dovecot.Layout.from_app(app)
    if dovecot.installed(layout):
        return [StatusItem("incoming filtering", True, f"on, Sieve in {layout.sieve_dir}")]
    return [StatusItem("incoming filtering", False,
                       f"on, but {layout.snippet} or the compiled scripts are missing "
                       "(run ie-config enable-incoming)")]


@hookimpl
def ie_account_options() -> Sequence[AccountOption]:
    return [policy.ACCOUNT_SWITCH, hold.ACCOUNT_SWITCH, retention.ACCOUNT_OPTION]


@hookimpl
def ie_cli_commands() -> Sequence[click.Command]:
    return cli.CLI_COMMANDS


@hookimpl
def ie_config_commands() -> Sequence[click.Command]:
    return cli.CONFIG_COMMANDS


@hookimpl
def ie_background(app: App) -> Sequence[BackgroundService]:
    return [spool.drainer(app), greylist.pruner(app, greylist.Greylist.from_app(app)),
            retention.service(app)]


@hookimpl
def ie_migration_locations() -> Sequence[str]:
    return [str(Path(__file__).parent / "migrations")]
