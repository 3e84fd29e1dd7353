"""Whitelists: authenticated users and senders whose outgoing mail bypasses filtering and
send limits, and recipients whose incoming mail is not filtered.

The ``whitelist`` check (outgoing, priority 200) ends the checks with a bypass finding
when the authenticated user is on the ``authuser`` list (:attr:`Bypass.ALL`: nothing
holds the message) or the sender email (or its domain, or a parent domain) is on the
``sender`` list and the MTA vouches for that sender (:func:`really_sent_by`;
:attr:`Bypass.CONTENT`: the content checks are skipped, never the account's own send
limit, a decision that runs after the checks).  Other plugins ask
``ie_is_whitelisted`` (the incoming filter for ``recipient``, the send limits for
``sender``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from ie_core import (
    App,
    Bypass,
    Direction,
    Finding,
    MessageContext,
    SenderIdentity,
    Stage,
    hookimpl,
)

from . import store
from .cli import whitelist
from .models import KINDS

STAGE = "whitelist"


def check(app: App, ctx: MessageContext) -> Finding | None:
    ident = ctx.identity
    if ident.auth_user and store.is_listed(app, "authuser", ident.auth_user):
        return _bypass("authuser", ident.auth_user, Bypass.ALL)
    if ident.sender_email and really_sent_by(app, ident):
        entry = store.matching_entry(app, "sender", ident.sender_email)
        if entry is not None:
            return _bypass("sender", entry, Bypass.CONTENT)
    return None


def really_sent_by(app: App, ident: SenderIdentity) -> bool:
    """Is the sender address one the sending account may use?

    The envelope sender is whatever the client wrote, so a sender-whitelist entry counts
    only when the MTA vouches for it: the SASL login is that very address, or the mail
    was submitted by a local user (sendmail, a PHP script) whose account owns the
    address's domain (the domain map, /etc/userdomains).  A relaying client that did not
    log in never passes for a whitelisted sender.
    """
    if ident.auth_user and "@" in ident.auth_user:
        return ident.auth_user == ident.sender_email
    if not ident.local_user or not ident.domain:
        return False
    owner = app.hooks.resolve_account(app, SenderIdentity(domain=ident.domain,
                                                          sender_email=ident.sender_email))
    return owner is not None and owner == ident.account


def _bypass(kind: str, entry: str, bypass: Bypass) -> Finding:
    return Finding(stage=STAGE, detail=f"{entry} is on the {kind} whitelist", final=True,
                   bypass=bypass)


@hookimpl
def ie_stages(app: App) -> Sequence[Stage]:
    return [Stage(name=STAGE, run=lambda ctx: check(app, ctx),
                  directions=frozenset({Direction.OUTGOING}), priority=200,
                  description="whitelisted login or sender: skip the content checks")]


@hookimpl
def ie_is_whitelisted(app: App, kind: str, address: str) -> bool | None:
    if kind not in KINDS:
        raise ValueError(f"unknown whitelist {kind!r}")
    return store.is_listed(app, kind, address)


@hookimpl
def ie_whitelisted_among(app: App, kind: str, addresses: Sequence[str]) -> set[str]:
    if kind not in KINDS:
        raise ValueError(f"unknown whitelist {kind!r}")
    return store.listed_among(app, kind, addresses)


@hookimpl
def ie_cli_commands() -> Sequence[click.Command]:
    return [whitelist]


@hookimpl
def ie_migration_locations() -> Sequence[str]:
    return [str(Path(__file__).parent / "migrations")]
