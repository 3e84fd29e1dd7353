"""``ie-cli whitelist authuser|sender|recipient add|list|remove VALUE...``."""

from __future__ import annotations

import click

from ie_core.commands import echo_err, emit, get_app, require_root, served

from . import store
from .addresses import parse_entry
from .models import KINDS

NO_DATA = "No available data"
SENDER_WARNING = ("Warning: mail from whitelisted senders is not filtered and has no send "
                  "limit; a hacked mailbox or script using such an address can send spam "
                  "freely.")
_HELP = {
    "authuser": "Authenticated users (email addresses) whose mail bypasses filtering.",
    "sender": "Sender emails or domains (with subdomains): no filtering, no send limit.",
    "recipient": "Recipient emails or domains (with subdomains): no incoming filtering.",
}


def _confirmation(verb: str, kind: str, values: list[str]) -> str:
    """What Imunify Email prints: each entry numbered with its type, then OK."""
    lines = [f"{verb} {kind}(s) {'to' if verb == 'Adding' else 'from'} the whitelist:"]
    lines += [f"{n}. {'email' if '@' in v else 'domain':9} {v}"
              for n, v in enumerate(values, 1)]
    return "\n".join([*lines, "OK"])


def _section(title: str, values: list[str]) -> list[str]:
    return [title, *(values or [NO_DATA])]


def _list_group(kind: str) -> click.Group:
    group = click.Group(kind, help=_HELP[kind])

    @group.command("add")
    @click.argument("values", nargs=-1, required=True)
    @click.option("--json", "as_json", is_flag=True, help="print JSON")
    def add(values: tuple[str, ...], as_json: bool) -> None:
        """Add VALUE... (all or nothing)."""
        require_root()
        parsed = [parse_entry(kind, v) for v in values]
        store.add(get_app(), kind, parsed)
        if kind == "sender":
            echo_err(SENDER_WARNING)
        emit({"success": True}, as_json, lambda: _confirmation("Adding", kind, parsed))

    @click.command("remove")
    @click.argument("values", nargs=-1, required=True)
    @click.option("--json", "as_json", is_flag=True, help="print JSON")
    def remove(values: tuple[str, ...], as_json: bool) -> None:
        """Remove VALUE... (all or nothing); `delete` is the same command."""
        require_root()
        parsed = [parse_entry(kind, v) for v in values]
        store.remove(get_app(), kind, parsed)
        emit({"success": True}, as_json, lambda: _confirmation("Removing", kind, parsed))

    group.add_command(remove, "remove")
    group.add_command(remove, "delete")  # Imunify's verb

    @group.command("list")
    @click.option("--json", "as_json", is_flag=True, help="print JSON")
    def list_(as_json: bool) -> None:
        """Print the EMAILS and DOMAINS on this list."""
        require_root()
        values = store.entries(get_app(), kind)
        emails = [v for v in values if "@" in v]
        domains = [v for v in values if "@" not in v]
        emit({"success": True, "emails": emails, "domains": domains}, as_json,
             lambda: "\n".join([*_section("EMAILS", emails), "",
                                *_section("DOMAINS", domains)]))

    return group


whitelist = served(click.Group("whitelist", help="Whitelists: authenticated users, senders, "
                                                 "recipients."))
for _kind in KINDS:
    whitelist.add_command(_list_group(_kind))
