"""Commands: ``ie-config enable-incoming`` / ``disable-incoming``, ``ie-cli stats incoming``,
``ie-cli incoming learn-spool``."""

from __future__ import annotations

import click

from ie_core import InvalidInput
from ie_core.commands import emit, get_app, require_root, served
from ie_core.identity import valid_account
from ie_plugins.incoming import dovecot, retention, spool, stats
from ie_plugins.incoming.policy import ENABLED

_JSON = click.option("--json", "as_json", is_flag=True, help="print JSON")
_CONF_D = click.option("--conf-d", help="Dovecot conf.d directory "
                                        "(default: incoming.dovecot_conf_d)")
_DOVECOT = click.option("--dovecot-config", help="Dovecot's main configuration file "
                                                 "(default: incoming.dovecot_config)")


def _result(result: dovecot.Result, as_json: bool, state: str) -> None:
    data = {"incoming": state, "changed": result.changed, "dovecot_reloaded": result.reloaded,
            "detail": result.detail}
    emit(data, as_json, lambda: "\n".join(
        [f"incoming filtering: {state}", *(f"wrote {p}" if state == "on" else f"removed {p}"
                                          for p in result.changed), result.detail]))


# -- ie-config ------------------------------------------------------------------------
@click.command("enable-incoming")
@_CONF_D
@_DOVECOT
@click.option("--no-dovecot", is_flag=True,
              help="only turn filtering on; leave Dovecot's configuration alone")
@_JSON
def enable_incoming(conf_d: str | None, dovecot_config: str | None, no_dovecot: bool,
                    as_json: bool) -> None:
    """Write the Dovecot/Sieve configuration and turn incoming filtering on."""
    require_root()
    app = get_app()
    if no_dovecot:
        result = dovecot.Result([], False, "Dovecot configuration not touched")
    else:
        result = dovecot.enable(dovecot.Layout.from_app(app, conf_d, dovecot_config))
    app.settings.set(ENABLED.name, True)
    _result(result, as_json, "on")


@click.command("disable-incoming")
@click.option("--purge", is_flag=True,
              help="also remove the Dovecot snippet, the Sieve scripts and the learn spool")
@_CONF_D
@_DOVECOT
@_JSON
def disable_incoming(purge: bool, conf_d: str | None, dovecot_config: str | None,
                     as_json: bool) -> None:
    """Turn incoming filtering off (mail passes through unmarked)."""
    require_root()
    app = get_app()
    app.settings.set(ENABLED.name, False)
    if purge:
        result = dovecot.purge(dovecot.Layout.from_app(app, conf_d, dovecot_config))
    else:
        result = dovecot.Result([], False, "Dovecot configuration kept (use --purge)")
    _result(result, as_json, "off")


# -- ie-cli stats incoming ------------------------------------------------------------
@click.group("stats", help="Statistics.")
def stats_group() -> None:
    pass


@served
@stats_group.command("incoming")
@click.option("--account", help="only this account")
@click.option("--days", type=click.IntRange(1, 3660), default=30, show_default=True,
              help="how many days back, today included")
@_JSON
def stats_incoming(account: str | None, days: int, as_json: bool) -> None:
    """Incoming messages per account and day: spam, legitimate, unfiltered."""
    require_root()
    rows = stats.daily(get_app(), days, account)
    emit({"items": rows}, as_json, lambda: "\n".join(
        f"{r['date']} {r['account']} spam={r['spam']} legitimate={r['legitimate']} "
        f"unfiltered={r['unfiltered']}" for r in rows))


# -- ie-cli incoming learn-spool ------------------------------------------------------
@click.group("incoming", help="Incoming filtering: learning from Junk moves, Junk retention.")
def incoming_group() -> None:
    pass


@incoming_group.command("learn-spool")
@_JSON
def learn_spool(as_json: bool) -> None:
    """Learn the reports queued by IMAPSieve now (ie-filterd does this every few seconds)."""
    require_root()
    app = get_app()
    path = spool.spool_dir(app)
    total = spool.DrainResult()
    while True:
        done = spool.drain(app, path, app.config.get("incoming.learn_max_bytes"))
        total.learned += done.learned
        total.failed += done.failed
        total.skipped += done.skipped
        total.refused += done.refused
        if done.failed or not (done.learned or done.skipped or done.refused):
            break
    data = {"learned": total.learned, "failed": total.failed, "skipped": total.skipped,
            "refused": total.refused}
    emit(data, as_json, lambda: " ".join(f"{k}={v}" for k, v in data.items()))
    if total.failed:
        raise click.exceptions.Exit(1)


@incoming_group.command("expunge-junk")
@click.option("--dry-run", is_flag=True, help="only count what would be expunged")
@click.option("-a", "--account", help="only this account's mailboxes")
@_JSON
def expunge_junk(dry_run: bool, account: str | None, as_json: bool) -> None:
    """Expunge from every Junk folder what is older than its account's retention
    (incoming.junk_retention_days; accounts edit --junk-retention)."""
    require_root()
    app = get_app()
    if account is not None and not valid_account(account):
        raise InvalidInput(f"invalid account name: {account[:80]!r}")
    report = retention.expunge_junk(app, dry_run=dry_run, account=account)
    data = {"dry_run": dry_run, "expunged": report.expunged,
            "items": [{"user": u.user, "account": u.account, "days": u.days,
                       "messages": u.expunged, "error": u.error} for u in report.users]}
    verb = "would expunge" if dry_run else "expunged"
    emit(data, as_json, lambda: "\n".join(
        [f"{i['user']} account={i['account']} days={i['days']} {verb}={i['messages']}"
         + (f" error={i['error']}" if i["error"] else "") for i in data["items"]]
        + [f"{verb} {report.expunged} message(s)"]))
    if report.failed:
        raise click.exceptions.Exit(1)


CLI_COMMANDS = [stats_group, incoming_group]
CONFIG_COMMANDS = [enable_incoming, disable_incoming]
