"""The owner's notification address: set with ``accounts edit --owner-email``, else
derived (``accounts.owner_email_domain``, else /etc/userdomains), and what the notifier
uses (issue 16: no command could set it)."""

from __future__ import annotations

import pytest

from ie_core import InvalidInput
from ie_plugins.accounts import owner_email
from ie_plugins.quarantine.service import Caller, QuarantineService

ROOT = Caller.root()


@pytest.fixture
def app(make_app, db_url, tmp_path):
    userdomains = tmp_path / "userdomains"
    userdomains.write_text("example.com: alice\nalice-shop.net: alice\nother.org: bob\n")
    return make_app(db_url=db_url, **{"identity.userdomains_file": str(userdomains)})


def edit(app, account: str, value: str) -> dict:
    service = QuarantineService(app)
    try:
        return service.accounts_edit(ROOT, account, options={"owner-email": value})
    finally:
        service.close()


def test_set_shown_and_used_by_the_notifier(app):
    assert owner_email(app, "alice") == "alice@example.com"  # /etc/userdomains' first
    assert owner_email(app, "carol") is None  # no domain anywhere: nobody gets notices
    row = edit(app, "carol", "Carol@Owner.Example")
    assert row["owner-email"] == "carol@owner.example"
    assert app.hooks.owner_address(app, "carol") == "carol@owner.example"
    assert edit(app, "carol", "default")["owner-email"] == ""


def test_the_admins_domain_comes_before_userdomains(make_app, db_url):
    app = make_app(db_url=db_url, **{"accounts.owner_email_domain": "mail.example.net"})
    assert owner_email(app, "alice") == "alice@mail.example.net"


@pytest.mark.parametrize("bad", ["nobody", "a@b", "x y@example.com", "<a@example.com>,b@c.d",
                                 "a@exa mple.com"])
def test_a_bad_address_is_one_clear_error(app, bad):
    with pytest.raises(InvalidInput, match="--owner-email takes an email address"):
        edit(app, "alice", bad)


def test_accounts_list_reads_every_accounts_switches_at_once(app):
    """``accounts list`` asks each option for all its accounts at once (one query, not
    one an account); the values are those the one-account reads give."""
    edit(app, "carol", "carol@owner.example")
    service = QuarantineService(app)
    try:
        service.accounts_edit(ROOT, "bob", options={"incoming": "off"})
        service.accounts_edit(ROOT, "alice", releases_limit=2)
        rows = {r["name"]: r for r in service.accounts_list(ROOT)["items"]}
    finally:
        service.close()
    assert {n: (r["owner-email"], r["incoming"]) for n, r in rows.items()} == {
        "alice": ("alice@example.com", "on"), "bob": ("bob@other.org", "off"),
        "carol": ("carol@owner.example", "on")}
    for option in app.hooks.account_options():
        assert option.values(app, sorted(rows)) == {n: option.get(app, n) for n in rows}


def test_thousands_of_accounts_get_the_same_values_as_one_by_one(app):
    """Over an IN list's worth of accounts the options read whole tables (one query)
    and keep the listed accounts' rows: the values stay those of the one-account reads,
    and accounts not listed do not appear."""
    service = QuarantineService(app)
    try:
        for name in ("acct7", "acct599", "unlisted"):
            service.accounts_edit(ROOT, name, options={"incoming": "off",
                                                       "owner-email": f"{name}@o.example"})
    finally:
        service.close()
    names = [f"acct{i}" for i in range(600)]
    for option in app.hooks.account_options():
        values = option.values(app, names)
        assert values == {n: option.get(app, n) for n in names}
    switches = next(o for o in app.hooks.account_options() if o.name == "incoming")
    emails = next(o for o in app.hooks.account_options() if o.name == "owner-email")
    assert [n for n, v in switches.values(app, names).items() if v == "off"] == \
        ["acct7", "acct599"]
    assert emails.values(app, names)["acct599"] == "acct599@o.example"
