"""ie-web's Activity Monitor over HTTP on both databases: the sender-object tree with
its figures and over-limit mark, a limit set and removed from a row, a sender whitelisted
after the confirmation page, the link to its held mail; owners never reach it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from ie_core import Action
from ie_core.db.models import Account, DomainMap
from ie_plugins.ratelimit.models import SenderObject
from ie_plugins.web import credentials
from ie_plugins.whitelist import store as whitelist
from tests.fixtures.web import ADMIN_PASSWORD, WEB, Browser
from tests.integration.test_ratelimit_cli import send


@pytest.fixture
def web_app(make_app, db_url, sink):
    app = make_app(db_url=db_url, **WEB, **{"pipeline.outgoing": ["whitelist", "ratelimit"],
                                             "filter.reinject": f"127.0.0.1:{sink.port}"})
    credentials.set_password(app, "root", ADMIN_PASSWORD)
    with app.db.session() as s:
        s.add(Account(name="alice", created_at=app.clock.now()))
        s.flush()
        s.add(DomainMap(domain="example.com", account="alice"))
    return app


@pytest.fixture
def admin(web_app):
    b = Browser(web_app)
    assert b.login("root", ADMIN_PASSWORD).status_code == 200
    return b


def row(html: str, name: str) -> str:
    found = re.search(rf'<tr data-name="{re.escape(name)}".*?</tr>', html, re.S)
    assert found, f"no row for {name}"
    return found.group(0)


def object_id(app, name: str) -> str:
    with app.db.session() as s:
        return s.scalars(select(SenderObject.id).where(SenderObject.name == name)).one()


def test_tree_limits_whitelist_and_held_link(web_app, admin):
    for _ in range(3):
        assert send(web_app, "bob@example.com") is Action.DELIVER
    page = admin.get("/monitor?since=1h").text
    bob = row(page, "bob@example.com")
    assert '<td class="num">3</td>' in bob and "over limit" not in bob
    assert 'href="/quarantine?account=alice&amp;sender=bob%40example.com"' in bob
    assert row(page, "alice") and row(page, "example.com")

    # a limit of 2 from the row: the next message is held and the row marked
    r = admin.post("/monitor/limit", {"id": object_id(web_app, "bob@example.com"),
                                      "so_type": "sender_email", "limit": "2",
                                      "back": "/monitor?since=1h"})
    assert r.status_code == 200 and "Limit of sender_email bob@example.com: 2 an hour" in r.text
    assert send(web_app, "bob@example.com") is Action.QUARANTINE
    bob = row(admin.get("/monitor").text, "bob@example.com")
    assert "over limit" in bob and '<span class="tag">own</span>' in bob
    assert 'href="/quarantine?account=alice&amp;sender=bob%40example.com">1</a>' in bob

    # whitelisting asks first, then adds the entry
    confirm = admin.get("/monitor/whitelist?so_type=sender_email&name=bob%40example.com")
    assert "Whitelist bob@example.com?" in confirm.text
    assert whitelist.entries(web_app, "sender") == []
    r = admin.post("/monitor/whitelist", {"so_type": "sender_email",
                                          "name": "bob@example.com", "back": "/monitor"})
    assert "is on the sender whitelist" in r.text
    assert whitelist.entries(web_app, "sender") == ["bob@example.com"]

    # an empty limit removes the object's own one
    admin.post("/monitor/limit", {"id": object_id(web_app, "bob@example.com"),
                                  "so_type": "sender_email", "limit": ""})
    with web_app.db.session() as s:
        assert s.get(SenderObject, object_id(web_app, "bob@example.com")).limit_override is None


def test_search_bad_input_and_owners(web_app, admin):
    send(web_app, "bob@example.com")
    send(web_app, "carol@other.test")
    page = admin.get("/monitor?field=sender&q=carol%40other.test").text
    assert "carol@other.test" in page and "bob@example.com" not in page
    r = admin.post("/monitor/limit", {"id": "not-a-uuid", "so_type": "sender_email",
                                      "limit": "5"})
    assert r.status_code == 400 and "is not a UUID" in r.text
    r = admin.post("/monitor/limit", {"id": object_id(web_app, "alice"), "so_type": "account",
                                      "limit": "lots"})
    assert r.status_code == 400 and "whole number" in r.text
    for bad in ("²", "-3", "9" * 5000):
        r = admin.post("/monitor/limit", {"id": object_id(web_app, "alice"),
                                          "so_type": "account", "limit": bad})
        assert r.status_code == 400 and "whole number" in r.text
    for page in ("²", "9" * 5000, "-1"):
        assert admin.get(f"/monitor?page={page}").status_code == 200
        assert admin.get(f"/quarantine?page={page}").status_code == 200
    assert admin.get("/monitor/whitelist?so_type=account&name=alice").status_code == 400

    credentials.set_password(web_app, "alice", "owner password 123")
    owner = Browser(web_app)
    owner.login("alice", "owner password 123")
    assert owner.get("/monitor").status_code == 404
    r = owner.post("/monitor/limit", {"id": object_id(web_app, "alice"),
                                      "so_type": "account", "limit": "0"})
    assert r.status_code == 404
    with web_app.db.session() as s:
        assert s.get(SenderObject, object_id(web_app, "alice")).limit_override is None
