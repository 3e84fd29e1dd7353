"""``ie-cli blocklist sender|recipient add|list|remove VALUE... [--account NAME]``."""

from __future__ import annotations

import click

from ie_core import InvalidInput
from ie_core.commands import emit, get_app, require_root, served
from ie_core.identity import normalise_domain, normalise_email, valid_account

from . import store
from .models import DEFAULT, JUNK, KINDS, REFUSE, SENDER, SERVER

NO_DATA = "No available data"
_HELP = {
    "sender": "Senders (emails or domains, with subdomains) whose incoming mail is refused "
              "or junked, for the server or one recipient account.",
    "recipient": "Recipients (emails or domains, with subdomains) that outgoing mail may not "
                 "be sent to (refused with 550), from any account or one account.",
}


def parse_value(text: str) -> str:
    """An email address or a domain, normalised like the whitelists' entries."""
    value = normalise_email(text) if "@" in text else normalise_domain(text)
    if value is None:
        shown = repr(text[:60]) + (f"... ({len(text)} characters)" if len(text) > 60 else "")
        raise InvalidInput(f"invalid email address or domain: {shown}")
    return value


def parse_account(name: str | None) -> str:
    if name is None:
        return SERVER
    if not valid_account(name):
        raise InvalidInput(f"invalid account name: {name[:60]!r}")
    return name


def _scope(account: str) -> str:
    return f"account {account}" if account else "the server"


def _confirmation(verb: str, kind: str, account: str, values: list[str]) -> str:
    where = "to" if verb == "Adding" else "from"
    lines = [f"{verb} {kind}(s) {where} the blocklist of {_scope(account)}:"]
    lines += [f"{n}. {'email' if '@' in v else 'domain':9} {v}" for n, v in enumerate(values, 1)]
    return "\n".join([*lines, "OK"])


def _shown(entry: store.Entry, kind: str) -> str:
    notes = [f"account {entry.account}"] if entry.account else []
    if kind == SENDER:
        notes.append(entry.action or "default action")
    return f"{entry.value} ({', '.join(notes)})" if notes else entry.value


def _list_group(kind: str) -> click.Group:
    group = click.Group(kind, help=_HELP[kind])
    account_option = click.option("--account", "-a", default=None,
                                  help="the account the entries hold for (default: all "
                                       "accounts, the server's list)")

    @group.command("add")
    @click.argument("values", nargs=-1, required=True)
    @account_option
    @click.option("--json", "as_json", is_flag=True, help="print JSON")
    def add(values: tuple[str, ...], account: str | None, as_json: bool,
            action: str = "default") -> None:
        """Add VALUE... (all or nothing)."""
        require_root()
        scope = parse_account(account)
        parsed = [parse_value(v) for v in values]
        store.add(get_app(), kind, scope, parsed, DEFAULT if action == "default" else action)
        emit({"success": True}, as_json, lambda: _confirmation("Adding", kind, scope, parsed))

    if kind == SENDER:
        click.option("--action", type=click.Choice([REFUSE, JUNK, "default"]),
                     default="default", show_default=True,
                     help="refuse (550) or junk this sender's mail; default follows "
                          "blocklist.sender_action")(add)

    @click.command("remove")
    @click.argument("values", nargs=-1, required=True)
    @account_option
    @click.option("--json", "as_json", is_flag=True, help="print JSON")
    def remove(values: tuple[str, ...], account: str | None, as_json: bool) -> None:
        """Remove VALUE... (all or nothing); `delete` is the same command."""
        require_root()
        scope = parse_account(account)
        parsed = [parse_value(v) for v in values]
        store.remove(get_app(), kind, scope, parsed)
        emit({"success": True}, as_json,
             lambda: _confirmation("Removing", kind, scope, parsed))

    group.add_command(remove, "remove")
    group.add_command(remove, "delete")

    @group.command("list")
    @account_option
    @click.option("--all", "everything", is_flag=True, help="every scope's entries")
    @click.option("--json", "as_json", is_flag=True, help="print JSON")
    def list_(account: str | None, everything: bool, as_json: bool) -> None:
        """Print the EMAILS and DOMAINS of the server's list (or an account's, or all)."""
        require_root()
        if everything and account is not None:
            raise InvalidInput("give --account or --all, not both")
        found = store.entries(get_app(), kind, None if everything else parse_account(account))
        emails = [_shown(e, kind) for e in found if e.type == "email"]
        domains = [_shown(e, kind) for e in found if e.type == "domain"]
        data = {"success": True,
                "emails": [e.value for e in found if e.type == "email"],
                "domains": [e.value for e in found if e.type == "domain"],
                "items": [{"value": e.value, "type": e.type, "account": e.account or None,
                           **({"action": e.action or None} if kind == SENDER else {})}
                          for e in found]}
        emit(data, as_json, lambda: "\n".join([
            "EMAILS", *(emails or [NO_DATA]), "", "DOMAINS", *(domains or [NO_DATA])]))

    return group


blocklist = served(click.Group(
    "blocklist", help="Blocklists: senders refused or junked (incoming), recipients refused "
                      "(outgoing)."))
for _kind in KINDS:
    blocklist.add_command(_list_group(_kind))
