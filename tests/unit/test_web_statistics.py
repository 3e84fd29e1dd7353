"""ie-web's Statistics page on both databases: outgoing mail per day from the message
log, incoming per day and per account, each with its SVG chart and numbers; an owner
sees only their own account."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from ie_core.db.models import Account, DomainMap
from ie_plugins.incoming.models import IncomingDaily
from ie_plugins.web import credentials
from ie_plugins.web.charts import Series, bar_chart
from tests.fixtures.web import ADMIN_PASSWORD, WEB, Browser
from tests.integration.test_ratelimit_cli import send

OWNER_PASSWORD = "owner password 123"


@pytest.fixture
def web_app(make_app, db_url, clock):
    clock.set(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    app = make_app(db_url=db_url, **WEB, **{"pipeline.outgoing": ["ratelimit"]})
    credentials.set_password(app, "root", ADMIN_PASSWORD)
    credentials.set_password(app, "alice", OWNER_PASSWORD)
    with app.db.session() as s:
        s.add_all([Account(name=n, created_at=clock.now()) for n in ("alice", "zed")])
        s.flush()
        s.add_all([DomainMap(domain="alice.test", account="alice"),
                   DomainMap(domain="zed.test", account="zed")])
        today = clock.now().date()
        s.add_all([IncomingDaily(day=today, account="alice", spam=4, legitimate=9, unfiltered=0),
                   IncomingDaily(day=today - timedelta(days=1), account="zed", spam=7,
                                 legitimate=1, unfiltered=2),
                   IncomingDaily(day=today - timedelta(days=40), account="alice", spam=99,
                                 legitimate=99, unfiltered=0)])
    return app


def figures(html: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table}".*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, f"no table {table}"
    return [re.findall(r"<td[^>]*>(?:<a[^>]*>)?([^<]*)", row)
            for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def test_admin_sees_every_account_owner_only_theirs(web_app, clock):
    send(web_app, "a@alice.test")
    send(web_app, "a@alice.test")
    clock.advance(seconds=-86400)
    send(web_app, "z@zed.test")
    clock.advance(seconds=86400)
    admin = Browser(web_app)
    admin.login("root", ADMIN_PASSWORD)
    page = admin.get("/statistics?days=30").text
    assert figures(page, "outgoing") == [["2026-03-10", "2", "0", "0"],
                                         ["2026-03-09", "1", "0", "0"]]
    assert figures(page, "incoming") == [["2026-03-10", "alice", "4", "9"],
                                         ["2026-03-09", "zed", "7", "1"]]
    assert figures(page, "incoming-accounts") == [["alice", "4", "9", "0"],
                                                  ["zed", "7", "1", "2"]]
    assert page.count("<svg") == 2 and "Outgoing mail per day" in page
    one = admin.get("/statistics?days=30&account=zed").text
    assert figures(one, "outgoing") == [["2026-03-09", "1", "0", "0"]]

    owner = Browser(web_app)
    owner.login("alice", OWNER_PASSWORD)
    mine = owner.get("/statistics?days=30&account=zed").text  # the account is ignored
    assert figures(mine, "outgoing") == [["2026-03-10", "2", "0", "0"]]
    assert figures(mine, "incoming") == [["2026-03-10", "4", "9"]]
    assert "zed" not in mine


def test_chart_escapes_labels_and_scales_to_the_largest_value():
    svg = str(bar_chart("<b>x</b>", ["2026-01-01", "2026-01-02"],
                        [Series("spam & ham", [2, 4])]))
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "spam &amp; ham" in svg
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)" fill', svg)]
    assert heights[1] == pytest.approx(2 * heights[0])
