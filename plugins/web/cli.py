"""``ie-cli web``: the admin's password, owners' passwords and login links (root only)."""

from __future__ import annotations

import sys

import click

from ie_core import InvalidInput
from ie_core.commands import emit, emit_ok, get_app, require_root, served

from . import credentials, signing
from .models import ADMIN


@click.group("web", help="ie-web: passwords and login links.")
def web() -> None:
    pass


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = click.prompt("New password", hide_input=True)
    if click.prompt("Again", hide_input=True) != first:
        raise InvalidInput("the two passwords differ")
    return str(first)


def _account(name: str) -> str:
    if not signing.owner_account(name):
        raise InvalidInput(f"invalid account name: {name[:80]!r} (root is the admin's "
                           "login: ie-cli web admin-password)")
    return name


_STDIN = click.option("--password-stdin", is_flag=True,
                      help="read the password from the first line of standard input")


@web.command("admin-password")
@_STDIN
def admin_password(password_stdin: bool) -> None:
    """Set the password of the admin's login (name: root)."""
    require_root()
    credentials.set_password(get_app(), ADMIN, _read_password(password_stdin))
    emit_ok()


@web.command("owner-password")
@click.argument("account")
@_STDIN
def owner_password(account: str, password_stdin: bool) -> None:
    """Set the password an account's owner logs in with (the owner can change it)."""
    require_root()
    credentials.set_password(get_app(), _account(account), _read_password(password_stdin))
    emit_ok()


@served
@web.command("login-link")
@click.argument("account")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def login_link(account: str, as_json: bool) -> None:
    """Print a login link that opens ACCOUNT (as the owner digest carries it)."""
    require_root()
    app = get_app()
    name = _account(account)
    link = signing.login_link(app, name)
    if link is None:
        raise InvalidInput("web.public_url is not set: ie-web does not know its address")
    emit({"account": name, "link": link}, as_json, lambda: link)
