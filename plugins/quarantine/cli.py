"""``ie-cli emails``, ``accounts`` and ``quarantine-defaults``.

Root's commands call the service layer directly; anybody else's go over the local socket
to the daemon, which knows from the kernel who is asking.  Either way the same
:mod:`.service` code decides.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO

import click

from ie_core import App
from ie_core.account_options import AccountOption
from ie_core.commands import emit, emit_ok, fail, get_app, is_root, served

from . import layouts, socket_api
from .layouts import printable
from .service import Caller, QuarantineService, dispatch, open_stream


def call(op: str, **args: Any) -> dict[str, Any]:
    args = {k: v for k, v in args.items() if v is not None and v is not False}
    app = get_app()
    if is_root():
        service = QuarantineService(app)
        try:
            return dispatch(service, Caller.root(), op, args)
        finally:
            service.close()
    return socket_api.call(app.config.get("quarantine.cli_socket"), op, args)


def stream_raw(email_id: str, account: str | None, out: BinaryIO) -> None:
    """Copy a held message's exact bytes to ``out`` in chunks (root reads the file, other
    users get it streamed by the service)."""
    args = {k: v for k, v in {"id": email_id, "account": account}.items() if v is not None}
    app = get_app()
    if is_root():
        service = QuarantineService(app)
        try:
            with open_stream(service, Caller.root(), "emails.raw", args) as stream:
                shutil.copyfileobj(stream, out, socket_api.CHUNK)
        finally:
            service.close()
        return
    socket_api.stream(app.config.get("quarantine.cli_socket"), "emails.raw", args, out)


_ACCOUNT = click.option("-a", "--account", help="hosting account (root: 'root' means all)")
_JSON = click.option("--json", "as_json", is_flag=True, help="print JSON")


# -- emails ---------------------------------------------------------------------------
@click.group("emails", help="Messages held in the quarantine.")
def emails() -> None:
    pass


@served
@emails.command("list")
@_ACCOUNT
@click.option("-s", "--since", default="30d", show_default=True,
              help="only mail received in the last 100s (a bare number is seconds), 5m, "
                   "1h, 5d ...")
@click.option("-l", "--limit", default="25", show_default=True, help="how many to show")
@click.option("--offset", default="0", show_default=True, help="how many to skip")
@click.option("--reason", help="only mail held for this reason (spam, winexec, ...)")
@click.option("--sender", help="only mail whose envelope sender contains this")
@click.option("--direction", type=click.Choice(["outgoing", "incoming"]),
              help="only mail held on its way out (outgoing) or in (incoming)")
@_JSON
def emails_list(account: str | None, since: str | None, limit: str, offset: str,
                reason: str | None, sender: str | None, direction: str | None,
                as_json: bool) -> None:
    """List held messages, newest first (the last 30 days unless --since says)."""
    data = call("emails.list", account=account, since=since, limit=limit, offset=offset,
                reason=reason, sender=sender, direction=direction)
    emit(data, as_json, lambda: layouts.emails_list(data))


@emails.command("show")
@click.option("--id", "email_id", required=True, help="message id")
@_ACCOUNT
@click.option("--raw", is_flag=True, help="write the exact message bytes to stdout")
@_JSON
def emails_show(email_id: str, account: str | None, raw: bool, as_json: bool) -> None:
    """Show one held message: metadata, headers and body (or --raw bytes)."""
    if raw:
        stream_raw(email_id, account, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    data = call("emails.show", id=email_id, account=account)
    emit(data, as_json, lambda: layouts.emails_show(data))


@served
@emails.command("history")
@_ACCOUNT
@click.option("-s", "--since", help="only what left in the last 100s, 5m, 1h, 5d ...")
@click.option("-l", "--limit", default="25", show_default=True, help="how many to show")
@click.option("--offset", default="0", show_default=True, help="how many to skip")
@_JSON
def emails_history(account: str | None, since: str | None, limit: str, offset: str,
                   as_json: bool) -> None:
    """Messages that left the quarantine: released, deleted or evicted, by whom and when."""
    data = call("emails.history", account=account, since=since, limit=limit, offset=offset)

    def text() -> str:
        return "\n".join(
            f"{i['date']} {i['action']} by={printable(i['actor'])} id={i['email_id']} "
            f"account={printable(i['account_name'])} from=<{printable(i['sender'])}> "
            f"subject={printable(i['subject'])!r}" for i in data["items"])

    emit(data, as_json, text)


def _report(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(data, True, str)
    elif not data["failed"]:
        emit_ok()
    for held_id, why in data["failed"].items():
        if not as_json:
            click.echo(f"{held_id}: {printable(why)}", err=True)
    if data["failed"]:
        fail(f"{len(data['failed'])} of {len(data['failed']) + len(data['done'])} failed")


@served
@emails.command("release")
@click.option("--ids", required=True, help="message ids, separated by commas")
@_ACCOUNT
@_JSON
def emails_release(ids: str, account: str | None, as_json: bool) -> None:
    """Send held messages on to their original recipients."""
    _report(call("emails.release", ids=ids, account=account), as_json)


@served
@emails.command("remove")
@click.option("--ids", required=True, help="message ids, separated by commas")
@_ACCOUNT
@click.option("--spam", is_flag=True, help="teach the classifier they are spam first")
@_JSON
def emails_remove(ids: str, account: str | None, spam: bool, as_json: bool) -> None:
    """Delete held messages for good."""
    _report(call("emails.remove", ids=ids, account=account, spam=spam), as_json)


# -- accounts -------------------------------------------------------------------------
@served
@click.group("accounts", help="Hosting accounts' quarantines: state, limits, usage.")
def accounts() -> None:
    pass


@accounts.command("list")
@click.option("--name", help="only this account")
@click.option("-l", "--limit", default="0", show_default=True,
              help="how many accounts to show (0: all)")
@click.option("--offset", default="0", show_default=True, help="how many to skip")
@_JSON
def accounts_list(name: str | None, limit: str, offset: str, as_json: bool) -> None:
    """Show each account's state, storage and release limits and usage, by name."""
    data = call("accounts.list", name=name, limit=limit, offset=offset)
    emit(data, as_json, lambda: layouts.accounts_list(data))


def accounts_edit_command(options: Sequence[AccountOption]) -> click.Command:
    """``accounts edit``, with a ``--NAME`` option for each plugin's account switch."""

    def edit(name: str, state: str | None, limit: str | None, releases_limit: str | None,
             as_json: bool, **switches: str | None) -> None:
        chosen = {o.name: switches[_param(o)] for o in options
                  if switches.get(_param(o)) is not None}
        row = call("accounts.edit", name=name, state=state, limit=limit,
                   releases_limit=releases_limit, options=chosen or None)
        emit(row, as_json, lambda: "\n".join(layouts.account_rows([row])))

    params: list[click.Parameter] = [
        click.Option(["-a", "--account", "--name", "name"], required=True,
                     help="hosting account"),
        click.Option(["--json", "as_json"], is_flag=True, help="print JSON"),
        click.Option(["--state"], help="active, or block (hold all its outgoing mail)"),
        click.Option(["--limit"], help="storage limit in bytes, or 'default'"),
        click.Option(["--releases-limit"],
                     help="releases per hour for the owner, or 'default'"),
    ]
    params += [click.Option([f"--{o.name}", _param(o)], metavar=o.metavar or None,
                            help=f"{o.doc} ({o.metavar or '|'.join(o.choices)})")
               for o in options]
    return click.Command("edit", callback=edit, params=params,
                         help="Change an account's state, limits or switches (root).")


def _param(option: AccountOption) -> str:
    return "opt_" + option.name.replace("-", "_")


@accounts.command("remove")
@click.option("-a", "--account", "name", required=True, help="hosting account")
def accounts_remove(name: str) -> None:
    """Purge an account's quarantine: delete all its held mail (root)."""
    call("accounts.remove", name=name)
    emit_ok()


# -- quarantine-defaults --------------------------------------------------------------
@served
@click.group("quarantine-defaults", help="Defaults for accounts without their own limits.")
def quarantine_defaults() -> None:
    pass


@quarantine_defaults.command("list")
@_JSON
def defaults_list(as_json: bool) -> None:
    """Show the default storage limit (bytes) and release limit (per hour)."""
    data = call("defaults.list")
    emit(data, as_json, lambda: layouts.settings_table(data))


@quarantine_defaults.command("set")
@click.option("-r", "--releases-limit", help="releases per hour per account; -1: built-in (5)")
@click.option("-s", "--storage-capacity", help="MB per account; -1: built-in (100)")
@_JSON
def defaults_set(releases_limit: str | None, storage_capacity: str | None,
                 as_json: bool) -> None:
    """Change the defaults (root); prints them as they are now."""
    data = call("defaults.set", releases_limit=releases_limit,
                storage_capacity=storage_capacity)
    emit(data, as_json, lambda: layouts.settings_table(data))


def commands(app: App) -> list[click.Command]:
    accounts.add_command(accounts_edit_command(app.hooks.account_options()))
    return [emails, accounts, quarantine_defaults]
