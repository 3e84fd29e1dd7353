"""Built-in account resolvers, the owners' notification addresses and the ``ie-cli
domains`` commands.

Order (first answer wins): the local Unix user the MTA reported (a PHP script runs as its
account's user, whatever address it claims), if it is a valid account name and not a
system user; then ie's own domain map (database), then cPanel's ``/etc/userdomains``.
Core falls back to ``root``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence

import click
from sqlalchemy import select

from ie_core import App, ConfigKey, InvalidInput, SenderIdentity, hookimpl
from ie_core.account_options import AccountOption
from ie_core.changes import track
from ie_core.commands import emit, emit_ok, fail, get_app, require_root, served
from ie_core.db import among
from ie_core.db.models import Account, DomainMap
from ie_core.identity import domain_of, normalise_address, valid_account, valid_domain

SYSTEM_USERS = {"root", "mail", "postfix", "Debian-exim", "exim", "nobody", "www-data"}


def _parent_domains(domain: str) -> list[str]:
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)]


DOMAIN_MAP = "domain_map"
"""The change counter of the domain map (:mod:`ie_core.changes`)."""
track(DomainMap, DOMAIN_MAP)


def _read_domain_map(app: App) -> dict[str, str]:
    with app.db.reading() as s:
        return {d: a for d, a in s.execute(select(DomainMap.domain, DomainMap.account))}


def lookup_domain_map(app: App, domain: str) -> str | None:
    """The account of ``domain`` or its nearest mapped parent (the map is cached, read
    again after a change)."""
    table = app.cached(DOMAIN_MAP, "accounts.domain_map", lambda: _read_domain_map(app))
    return next((table[c] for c in _parent_domains(domain) if c in table), None)


def parse_userdomains(lines: Iterable[str]) -> dict[str, str]:
    """``domain: user`` lines (cPanel) as ``{domain: user}``; the ``*`` catch-all is
    skipped."""
    table = {}
    for line in lines:
        d, sep, user = line.partition(":")
        if sep and d.strip() and d.strip() != "*":
            table[d.strip().lower()] = user.strip()
    return table


class _UserdomainsCache:
    """The parsed table per path, parsed again only when the file's inode, modification
    time or size changed (the file is read for every message otherwise)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {}

    def table(self, path: str) -> dict[str, str] | None:
        """``None`` when the file cannot be read."""
        with self._lock:
            try:
                st = os.stat(path)
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                cached = self._tables.get(path)
                if cached is not None and cached[0] == stamp:
                    return cached[1]
                with open(path, encoding="utf-8", errors="replace") as fh:
                    table = parse_userdomains(fh)
            except OSError:
                self._tables.pop(path, None)
                return None
            self._tables[path] = (stamp, table)
            return table


_userdomains = _UserdomainsCache()


def lookup_userdomains(path: str, domain: str) -> str | None:
    """The owner of ``domain`` or its nearest listed parent in cPanel's ``/etc/userdomains``
    (``nobody`` and names that are not valid accounts count as no owner)."""
    table = _userdomains.table(path)
    if table is None:
        return None
    for candidate in _parent_domains(domain):
        owner = table.get(candidate)
        if owner and valid_account(owner) and owner != "nobody":
            return owner
    return None


@hookimpl(trylast=True)
def ie_resolve_account(app: App, identity: SenderIdentity) -> str | None:
    local = identity.local_user
    if local and local not in SYSTEM_USERS and valid_account(local):
        return local
    if not identity.domain:
        return None
    return (lookup_domain_map(app, identity.domain)
            or lookup_userdomains(app.config.get("identity.userdomains_file"), identity.domain))


# -- the owner's address ---------------------------------------------------------------
DEFAULT = "default"


def owner_email(app: App, account: str) -> str | None:
    """Where the account's owner notices go: the address set with ``accounts edit
    --owner-email``, else ``<account>@accounts.owner_email_domain``, else
    ``<account>@<its first domain in /etc/userdomains>``; ``None`` when none applies."""
    return owner_emails(app, [account])[account]


def owner_emails(app: App, accounts: Sequence[str]) -> dict[str, str | None]:
    """:func:`owner_email` of many accounts: one query, /etc/userdomains read once."""
    explicit: dict[str, str] = {}
    query = select(Account.name, Account.owner_email).where(Account.owner_email.is_not(None))
    with app.db.reading() as s:
        for name, address in s.execute(among(query, Account.name, accounts)):
            if address:
                explicit[name] = address
    domain = app.config.get("accounts.owner_email_domain").strip().lower()
    first_domain: dict[str, str] = {}
    if not domain:
        table = _userdomains.table(app.config.get("identity.userdomains_file")) or {}
        for name, user in table.items():
            first_domain.setdefault(user, name)
    out: dict[str, str | None] = {}
    for account in accounts:
        derived = domain or first_domain.get(account, "")
        out[account] = explicit.get(account) or (
            f"{account}@{derived}" if derived and valid_account(account) else None)
    return out


def _parse_owner_email(value: str) -> str:
    if value.strip().lower() == DEFAULT:
        return ""
    address = normalise_address(value)
    local = (address or "").partition("@")[0]
    if address is None or not local or not valid_domain(domain_of(address) or "") \
            or any(c.isspace() or c in "<>,;\"" for c in address):
        raise InvalidInput(f"--owner-email takes an email address or 'default', "
                           f"not {value[:60]!r}")
    return address


def _get_owner_email(app: App, account: str) -> str:
    return owner_email(app, account) or ""


def _get_owner_emails(app: App, accounts: Sequence[str]) -> dict[str, str]:
    return {a: address or "" for a, address in owner_emails(app, accounts).items()}


def _set_owner_email(app: App, account: str, value: str) -> None:
    with app.db.session() as s:
        row = s.get(Account, account)
        if row is None:
            row = Account(name=account, created_at=app.clock.now())
            s.add(row)
        row.owner_email = value or None


OWNER_EMAIL = AccountOption(
    "owner-email", (), "where the owner's notices and digests go ('default': derived from "
    "accounts.owner_email_domain or /etc/userdomains)", _get_owner_email, _set_owner_email,
    parse=_parse_owner_email, metavar="ADDRESS|default", get_many=_get_owner_emails)


@hookimpl
def ie_owner_address(app: App, account: str) -> str | None:
    return owner_email(app, account)


@hookimpl
def ie_account_options() -> Sequence[AccountOption]:
    return [OWNER_EMAIL]


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [ConfigKey("accounts", "owner_email_domain", str, "", "Domain for the default "
                      "owner address <account>@DOMAIN of accounts with no --owner-email; "
                      "empty: the account's first domain in /etc/userdomains.")]


# -- ie-cli domains -------------------------------------------------------------------
@served
@click.group("domains", help="ie's own domain -> hosting account map.")
def domains() -> None:
    pass


@domains.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def domains_list(as_json: bool) -> None:
    require_root()
    app = get_app()
    with app.db.session() as s:
        rows = s.execute(select(DomainMap.domain, DomainMap.account)
                         .order_by(DomainMap.domain)).all()
    items = [{"domain": d, "account": a} for d, a in rows]
    emit({"items": items}, as_json, lambda: "\n".join(f"{d} {a}" for d, a in rows))


@domains.command("set")
@click.argument("domain")
@click.argument("account")
def domains_set(domain: str, account: str) -> None:
    require_root()
    domain = domain.lower().rstrip(".")
    if not valid_domain(domain):
        fail(f"invalid domain name: {domain[:80]!r}")
    if not valid_account(account):
        fail(f"invalid account name: {account[:80]!r}")
    app = get_app()
    with app.db.session() as s:
        if s.get(Account, account) is None:
            s.add(Account(name=account, created_at=app.clock.now()))
        row = s.get(DomainMap, domain)
        if row is None:
            s.add(DomainMap(domain=domain, account=account))
        else:
            row.account = account
    emit_ok()


@domains.command("remove")
@click.argument("domain")
def domains_remove(domain: str) -> None:
    require_root()
    app = get_app()
    with app.db.session() as s:
        row = s.get(DomainMap, domain.lower().rstrip("."))
        if row is None:
            fail(f"domain {domain[:80]!r} is not mapped")
        s.delete(row)
    emit_ok()


@hookimpl
def ie_cli_commands() -> Sequence[click.Command]:
    return [domains]
