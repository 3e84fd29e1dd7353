"""The built-in account resolvers: local user, ie's domain map, /etc/userdomains."""

from __future__ import annotations

import os

import pytest

from ie_core import SenderIdentity
from ie_core.db.models import Account, DomainMap
from ie_plugins import accounts


@pytest.fixture
def userdomains(tmp_path):
    path = tmp_path / "userdomains"
    path.write_text("cpanel.example: cpuser\n*: nobody\nbad.example: john+x\n")
    return path


@pytest.fixture
def app(make_app, db_url, userdomains):
    app = make_app(db_url=db_url, **{"identity.userdomains_file": str(userdomains)})
    with app.db.session() as s:
        s.add(Account(name="shopacct", created_at=app.clock.now()))
        s.add(DomainMap(domain="shop.example", account="shopacct"))
    return app


@pytest.mark.parametrize(("local_user", "domain", "account"), [
    ("john", "shop.example", "john"),  # a PHP script runs as its account's user
    ("john+x", "shop.example", "shopacct"),  # not an account name: the domain decides
    ("a" * 65, "cpanel.example", "cpuser"),  # longer than an account column holds
    ("../etc", None, None),
    ("postfix", "shop.example", "shopacct"),  # system users are never an account
])
def test_only_a_valid_local_user_is_the_account(app, local_user, domain, account):
    identity = SenderIdentity(local_user=local_user, domain=domain)
    assert accounts.ie_resolve_account(app, identity) == account


def test_userdomains_owners_that_are_not_account_names_are_skipped(userdomains):
    assert accounts.lookup_userdomains(str(userdomains), "www.cpanel.example") == "cpuser"
    assert accounts.lookup_userdomains(str(userdomains), "bad.example") is None
    assert accounts.lookup_userdomains(str(userdomains), "other.example") is None
    assert accounts.lookup_userdomains(str(userdomains.parent / "missing"), "a.example") is None


def test_userdomains_is_parsed_again_only_when_it_changes(userdomains, monkeypatch):
    parses: list[int] = []
    parse = accounts.parse_userdomains

    def counting(lines):
        parses.append(1)
        return parse(lines)

    monkeypatch.setattr(accounts, "parse_userdomains", counting)
    path = str(userdomains)
    for _ in range(5):
        assert accounts.lookup_userdomains(path, "cpanel.example") == "cpuser"
    assert len(parses) == 1
    stat = userdomains.stat()
    userdomains.write_text("cpanel.example: newowner\n")  # cPanel edits it in place
    os.utime(userdomains, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert accounts.lookup_userdomains(path, "cpanel.example") == "newowner"
    assert accounts.lookup_userdomains(path, "cpanel.example") == "newowner"
    assert len(parses) == 2
    userdomains.unlink()
    assert accounts.lookup_userdomains(path, "cpanel.example") is None
