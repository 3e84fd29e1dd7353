"""ie-web's Settings page on both databases: send limits, quarantine defaults, an
account's row (state, limits, the plugins' switches, purge), run-time filter settings and
the whitelists, each through the same service as ie-cli, with its one-line errors; owners
never reach it."""

from __future__ import annotations

import pytest

from ie_core import Direction
from ie_core.runtime import current
from ie_plugins.classify.settings import THRESHOLDS
from ie_plugins.quarantine.service import Caller, QuarantineService
from ie_plugins.ratelimit.limits import server_settings
from ie_plugins.web import credentials
from ie_plugins.whitelist import store as whitelist
from tests.fixtures.web import ADMIN_PASSWORD, WEB, Browser, hold, spam


@pytest.fixture
def web_app(make_app, db_url):
    app = make_app(db_url=db_url, **WEB)
    credentials.set_password(app, "root", ADMIN_PASSWORD)
    return app


@pytest.fixture
def admin(web_app):
    b = Browser(web_app)
    b.login("root", ADMIN_PASSWORD)
    return b


def account(app, name: str) -> dict:
    [row] = QuarantineService(app).accounts_list(Caller.root(), name)["items"]
    return row


def test_limits_defaults_and_filters(web_app, admin):
    r = admin.post("/settings/limits", {"account": "100", "domain": "", "sender_email": "20",
                                        "script": "0", "limit_mode": "2"})
    assert r.status_code == 200 and "Send limits saved" in r.text
    s = server_settings(web_app)
    assert (s.account, s.sender_email, s.limit_mode) == (100, 20, 2)
    for bad in ("lots", "²", "--5", "9" * 5000):  # one line each, never a traceback
        r = admin.post("/settings/limits", {"account": bad})
        assert r.status_code == 400 and "takes a whole number" in r.text
    assert server_settings(web_app).account == 100

    r = admin.post("/settings/quarantine", {"storage_mb": "50", "releases_limit": "3"})
    assert "Quarantine defaults saved: 50 MB per account, 3 releases an hour" in r.text

    page = admin.get("/settings").text
    assert 'name="classify.incoming_threshold"' in page
    r = admin.post("/settings/filters", {"classify.incoming_threshold": "8.5"})
    assert "Filter settings saved: classify.incoming_threshold" in r.text
    assert current(web_app, THRESHOLDS[Direction.INCOMING]) == 8.5
    r = admin.post("/settings/filters", {"classify.incoming_threshold": "high"})
    assert r.status_code == 400 and current(web_app, THRESHOLDS[Direction.INCOMING]) == 8.5


def test_account_row_purge_and_whitelists(web_app, admin):
    held = hold(web_app, "alice", spam("one"))
    r = admin.post("/settings/account", {"name": "alice", "state": "block",
                                         "limit_bytes": "2000000", "releases_limit": "1",
                                         "incoming": "off"})
    assert r.status_code == 200 and "Account alice saved" in r.text
    row = account(web_app, "alice")
    assert (row["state"], row["limit_bytes"], row["releases_limit"], row["incoming"]) == (
        "block", 2000000, 1, "off")

    r = admin.post("/settings/account/purge", {"name": "alice", "confirm": "alic"})
    assert r.status_code == 400 and "to purge its quarantine" in r.text
    assert held in admin.get("/quarantine").text
    r = admin.post("/settings/account/purge", {"name": "alice", "confirm": "alice"})
    assert "1 message(s) deleted" in r.text and held not in admin.get("/quarantine").text

    r = admin.post("/settings/whitelist", {"kind": "recipient", "value": "Boss@Example.ORG",
                                           "action": "add"})
    assert "added to the recipient whitelist" in r.text
    assert whitelist.entries(web_app, "recipient") == ["boss@example.org"]
    admin.post("/settings/whitelist", {"kind": "recipient", "value": "boss@example.org",
                                       "action": "remove"})
    assert whitelist.entries(web_app, "recipient") == []
    r = admin.post("/settings/whitelist", {"kind": "sender", "value": "not an address",
                                           "action": "add"})
    assert r.status_code == 400 and whitelist.entries(web_app, "sender") == []


def test_owners_cannot_reach_settings(web_app):
    credentials.set_password(web_app, "alice", "owner password 123")
    owner = Browser(web_app)
    owner.login("alice", "owner password 123")
    assert owner.get("/settings").status_code == 404
    assert owner.post("/settings/limits", {"account": "0"}).status_code == 404
    assert owner.post("/settings/account", {"name": "alice", "state": "active",
                                            "releases_limit": "999"}).status_code == 404


def test_the_account_table_comes_in_pages_of_fifty(web_app, admin):
    service = QuarantineService(web_app)
    for n in range(55):
        service.accounts_edit(Caller.root(), f"acct{n:02d}", releases_limit="2")
    first = admin.get("/settings").text
    assert first.count("<tr data-account=") == 50
    assert 'data-account="acct00"' in first and 'data-account="acct49"' in first
    assert "accounts page 1 of 2" in first and 'href="/settings?accounts_page=2#accounts"' in first
    second = admin.get("/settings?accounts_page=2").text
    assert second.count("<tr data-account=") == 5 and 'data-account="acct54"' in second
    assert 'data-account="acct00"' not in second
    for odd in ("0", "x", "²", "9" * 40):  # any page that is not one is the first
        assert admin.get(f"/settings?accounts_page={odd}").status_code == 200
