"""``ie-cli am``: server settings, per-object limits and statistics."""

from __future__ import annotations

import json
from typing import Any

import click

from ie_core import InvalidInput
from ie_core.commands import emit, get_app, require_root, served
from ie_core.durations import parse_duration

from .limits import save_server_settings, server_settings, set_object_limit
from .stats import Filters, stats


def _int(option: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidInput(f"{option} takes a whole number, not {text[:40]!r}") from None


@served
@click.group("am", help="Activity Monitor: send limits and what each sender sent. Prints "
                        "JSON, as Imunify Email's ie-cli does.")
def am() -> None:
    pass


_JSON = click.option("--json", "as_json", is_flag=True,
                     help="print JSON (the default; kept for scripts that pass it)")


def _json(data: Any) -> str:
    return json.dumps(data, indent=4, sort_keys=True, default=str)


@am.group("server-settings", invoke_without_command=True)
@_JSON
@click.pass_context
def server_settings_cmd(ctx: click.Context, as_json: bool) -> None:
    """Print the default limits per object type and the limit mode."""
    if ctx.invoked_subcommand is None:
        click.echo(_json(server_settings(get_app()).as_json()))


@server_settings_cmd.command("set")
@click.option("--limit-mode", help="1: count messages, 2: count distinct recipients")
@click.option("--account", help="default hourly limit per account (0: unlimited)")
@click.option("--domain", help="default hourly limit per domain (0: unlimited)")
@click.option("--script", help="default hourly limit per script (0: unlimited)")
@click.option("--sender-email", help="default hourly limit per sender email (0: unlimited)")
@_JSON
def server_settings_set(as_json: bool, **given: str | None) -> None:
    """Change defaults (an omitted option or -1 leaves a value unchanged); prints the new
    settings."""
    require_root()
    changes = {name: _int("--" + name.replace("_", "-"), text)
               for name, text in given.items() if text is not None}
    values = save_server_settings(get_app(), changes).as_json()
    click.echo(_json(values) if as_json else "New server settings is:\n" + _json(values))


@am.group("limit")
def limit_group() -> None:
    """Per-object limits."""


@limit_group.command("set")
@click.option("--id", "object_id", required=True, help="the object's id (from am stats)")
@click.option("--so-type", required=True, help="account, domain, sender_email or script")
@click.option("--limit", "limit_text", required=True,
              help="hourly limit; 0: unlimited, -1: remove the override (default applies)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def limit_set(object_id: str, so_type: str, limit_text: str, as_json: bool) -> None:
    """Override one object's limit, or remove the override."""
    require_root()
    result = set_object_limit(get_app(), object_id, so_type, _int("--limit", limit_text))
    emit(result, as_json, lambda: "OK")


@am.command("stats")
@click.option("--since", default="1h", show_default=True, help="period: 30m, 1h, 7d...")
@click.option("--account-name", help="only this account")
@click.option("--domain", help="only this domain")
@click.option("--sender-email", help="only this sender email")
@click.option("--script-name", help="only this script")
@click.option("--limit", "limit_text", default="25", show_default=True,
              help="accounts per page")
@click.option("--offset", "offset_text", default="0", show_default=True,
              help="accounts to skip")
@_JSON
@click.option("--text", "as_text", is_flag=True, help="print an indented tree instead")
def stats_cmd(since: str, account_name: str | None, domain: str | None,
              sender_email: str | None, script_name: str | None, limit_text: str,
              offset_text: str, as_json: bool, as_text: bool) -> None:
    """What each account, domain, sender email and script sent and had held."""
    require_root()
    span = parse_duration(since)
    limit, offset = _int("--limit", limit_text), _int("--offset", offset_text)
    if limit < 1 or offset < 0:
        raise InvalidInput("--limit takes a number >= 1 and --offset a number >= 0")
    data = stats(get_app(), span, Filters(account_name, domain, sender_email, script_name),
                 limit, offset)
    if as_text and not as_json:
        click.echo(_text(data))
        return
    for account in data["accounts"]:
        account["scripts"] = account["scripts"] or None  # Imunify gives null for none
    click.echo(_json(data))


def _line(kind: str, node: dict[str, Any], depth: int) -> str:
    flags = [f for f, on in (("rate-limited", node["rateLimited"]),
                             ("whitelisted", node["whitelisted"]),
                             ("override", node["exclusion"])) if on]
    return (f"{'  ' * depth}{kind} {node['name']} id={node['id']} messages={node['messages']} "
            f"quarantined={node['quarantined']} limit={node['limit'] or 'unlimited'}"
            + (f" [{', '.join(flags)}]" if flags else ""))


def _text(data: dict[str, Any]) -> str:
    lines = []
    for account in data["accounts"]:
        lines.append(_line("account", account, 0))
        for domain in account["domains"]:
            lines.append(_line("domain", domain, 1))
            lines.extend(_line("sender_email", e, 2) for e in domain["sender_emails"])
        lines.extend(_line("script", sc, 1) for sc in account["scripts"])
    return "\n".join(lines) or "no senders"
