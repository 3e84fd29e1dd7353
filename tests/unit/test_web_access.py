"""ie-web's access rules over HTTP, on SQLite and PostgreSQL: logins and their rate
limit, CSRF, the owner held to their own account and release limit, sessions shared by
several ie-web processes."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from itsdangerous import URLSafeTimedSerializer

from ie_plugins.quarantine.service import Caller, QuarantineService
from ie_plugins.web import credentials
from ie_plugins.web.signing import LINK_SALT, login_link, secret
from tests.fixtures.web import ADMIN_PASSWORD, WEB, Browser, hold, spam


@pytest.fixture
def web_app(make_app, db_url, sink):
    app = make_app(db_url=db_url, **WEB, **{"filter.reinject": f"127.0.0.1:{sink.port}",
                                             "web.login_failures_per_name": 3,
                                             "web.login_failures_per_ip": 5})
    credentials.set_password(app, "root", ADMIN_PASSWORD)
    return app


@pytest.fixture
def admin(web_app):
    b = Browser(web_app)
    assert b.login("root", ADMIN_PASSWORD).url.path == "/quarantine"
    return b


def _without(text: str, *ids: str) -> str:
    for i in ids:
        text = text.replace(i, "ID")
    return re.sub(r'value="[^"]{20,}"', 'value="TOKEN"', text)


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(web_app, admin):
    held = hold(web_app, "alice", spam("one"))
    for data in ({"action": "delete", "ids": held},
                 {"action": "delete", "ids": held, "csrf": "forged"}):
        r = admin.client.post("/quarantine/action", data=data)
        assert r.status_code == 403 and "security token" in r.text
    assert held in admin.get("/quarantine").text
    # another session's token does not do either
    other = Browser(web_app)
    r = admin.client.post("/quarantine/action",
                          data={"action": "delete", "ids": held, "csrf": other.csrf})
    assert r.status_code == 403
    r = admin.post("/quarantine/action", {"action": "delete", "ids": held})
    assert r.status_code == 200 and "1 message(s) deleted" in r.text
    assert held not in admin.get("/quarantine").text


def test_session_cookie_is_signed_httponly_strict_and_secure_by_default(make_app, db_url):
    app = make_app(db_url=db_url)
    credentials.set_password(app, "root", ADMIN_PASSWORD)
    b = Browser(app, base_url="https://testserver")
    r = b.client.post("/login", data={"name": "root", "password": ADMIN_PASSWORD,
                                      "csrf": b.csrf}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_wrong_passwords_are_refused_then_rate_limited_per_name_and_per_ip(web_app):
    b = Browser(web_app)
    for _ in range(3):
        assert b.login("root", "not the password").status_code == 401
    # the limit for the name is reached: even the right password is refused now
    r = b.login("root", ADMIN_PASSWORD)
    assert r.status_code == 429 and "Too many failed logins" in r.text
    # another ie-web process on the same database agrees
    assert Browser(web_app).login("root", ADMIN_PASSWORD).status_code == 429
    # per address: failures for other names add up to the address's limit
    credentials.set_password(web_app, "carol", "carol password 1")
    b.login("dave", "x" * 12)
    b.login("erin", "x" * 12)  # 5 failures from this address now
    assert b.login("carol", "carol password 1").status_code == 429
    web_app.clock.advance(seconds=901)
    assert b.login("root", ADMIN_PASSWORD).url.path == "/quarantine"


def test_an_owner_sees_only_their_own_mail_and_a_forged_id_is_an_unknown_id(web_app):
    mine = hold(web_app, "alice", spam("for alice"))
    theirs = hold(web_app, "bob", spam("for bob"))
    owner = Browser(web_app)
    assert owner.login_link(login_link(web_app, "alice")).url.path == "/quarantine"
    page = owner.get("/quarantine").text
    assert mine in page and theirs not in page
    assert theirs not in owner.get("/quarantine?account=bob").text  # the filter is ignored
    unknown = str(uuid.uuid4())
    for suffix in ("", "?view=headers", "/raw"):
        forged = owner.get(f"/quarantine/{theirs}{suffix}")
        guess = owner.get(f"/quarantine/{unknown}{suffix}")
        assert forged.status_code == guess.status_code == 404
        assert _without(forged.text, theirs) == _without(guess.text, unknown)
    for action in ("release", "delete"):
        forged = owner.post("/quarantine/action", {"action": action, "ids": theirs})
        guess = owner.post("/quarantine/action", {"action": action, "ids": unknown})
        assert _without(forged.text, theirs) == _without(guess.text, unknown)
        assert f"no held message with id {theirs}" in forged.text
    # bob's message is untouched; the admin-only action is refused for an owner
    held = QuarantineService(web_app).emails_list(Caller.root())["items"]
    assert {i["email_id"] for i in held} == {mine, theirs}
    r = owner.post("/quarantine/action", {"action": "spam", "ids": mine})
    assert r.status_code == 400
    assert owner.get("/account").status_code == 200


def test_an_owner_releases_up_to_the_hourly_limit_and_the_next_is_refused(web_app, sink):
    QuarantineService(web_app).accounts_edit(Caller.root(), "alice", releases_limit="2")
    ids = [hold(web_app, "alice", spam(f"msg {n}")) for n in range(3)]
    owner = Browser(web_app)
    owner.login_link(login_link(web_app, "alice"))
    assert "Releases left this hour: <b>2</b> of 2" in owner.get("/quarantine").text
    r = owner.post("/quarantine/action", {"action": "release", "ids": ids[:2]})
    assert "2 message(s) released" in r.text
    assert "Releases left this hour: <b>0</b> of 2" in r.text
    r = owner.post("/quarantine/action", {"action": "release", "ids": ids[2]})
    assert "not released, still held" in r.text and ids[2] in r.text
    assert len(sink.handler.messages) == 2
    history = owner.get("/quarantine/history").text
    assert history.count("<td>released</td><td>alice</td>") == 2
    web_app.clock.advance(hours=1, seconds=1)
    assert "Releases left this hour: <b>2</b> of 2" in owner.get("/quarantine").text


def test_login_links_open_one_account_and_expire(web_app, make_app, db_url):
    link = login_link(web_app, "alice")
    assert link is not None and link.startswith("http://127.0.0.1/login/link?token=")
    b = Browser(web_app)
    tampered = link.replace("token=", "token=x")
    assert b.get(tampered.removeprefix("http://127.0.0.1")).status_code == 400
    r = b.post("/login/link", {"token": "not-a-token"})
    assert r.status_code == 400 and "not valid" in r.text
    assert b.get("/quarantine").url.path == "/login"  # still nobody
    b.login_link(link)
    assert "account <b>alice</b>" in b.get("/quarantine").text
    # root is the admin's name: no link opens it, even one signed with the real key
    assert login_link(web_app, "root") is None
    forged = URLSafeTimedSerializer(secret(web_app), salt=LINK_SALT).dumps({"account": "root"})
    assert b.get(f"/login/link?token={forged}").status_code == 400
    r = Browser(web_app).post("/login/link", {"token": forged})
    assert r.status_code == 400 and "<span>admin</span>" not in r.text
    # another ie-web on the same database whose links live less than no time at all
    expired = make_app(db_url=db_url, **WEB, **{"web.login_link_ttl": -1.0})
    assert Browser(expired).get(link.removeprefix("http://127.0.0.1")).status_code == 400


def test_owner_password_and_settings_through_the_account_page(web_app):
    owner = Browser(web_app)
    owner.login_link(login_link(web_app, "alice"))
    page = owner.get("/account").text
    assert 'name="incoming"' in page and 'name="owner-email"' in page
    r = owner.post("/account/options", {"incoming": "off", "owner-email": "me@example.net"})
    assert "Settings saved" in r.text
    [row] = QuarantineService(web_app).accounts_list(Caller.root(), "alice")["items"]
    assert row["incoming"] == "off" and row["owner-email"] == "me@example.net"
    assert owner.post("/account/options", {"incoming": "maybe"}).status_code == 400
    # the address emptied: back to the derived default; the switch alone left as it is
    r = owner.post("/account/options", {"incoming": "off", "owner-email": ""})
    assert "Settings saved" in r.text
    [row] = QuarantineService(web_app).accounts_list(Caller.root(), "alice")["items"]
    assert row["incoming"] == "off" and row["owner-email"] == ""
    assert "Nothing changed" in owner.post("/account/options", {"incoming": "off"}).text
    assert owner.post("/account/password", {"password": "short", "again": "short"}
                      ).status_code == 400
    elsewhere = Browser(web_app)  # the same owner in another browser
    elsewhere.login_link(login_link(web_app, "alice"))
    r = owner.post("/account/password", {"password": "alice password",
                                         "again": "alice password"})
    assert "Password set" in r.text
    assert owner.get("/account").url.path == "/account"  # this session goes on
    assert elsewhere.get("/account").url.path == "/login"  # the other one has ended
    again = Browser(web_app)
    assert again.login("alice", "alice password").url.path == "/quarantine"
    assert again.get("/quarantine/history").status_code == 200
    # the admin has no owner page; an owner's password does not open the admin's pages
    assert Browser(web_app).login("root", "alice password").status_code == 401


def test_the_admin_filters_views_downloads_and_the_body_is_never_live(web_app, admin):
    raw = spam("html one", html=True)
    html_id = hold(web_app, "alice", raw, to="carol@example.net")
    other = hold(web_app, "bob", spam("plain one"), reason="winexec")
    listed = admin.get("/quarantine?recipient=CAROL@").text
    assert html_id in listed and other not in listed
    listed = admin.get("/quarantine?reason=winexec&account=bob").text
    assert other in listed and html_id not in listed
    web_app.clock.advance(days=2)
    later = hold(web_app, "bob", spam("two days later"))
    day_of = {held: admin.get(f"/quarantine?date_from={d}&date_to={d}").text
              for held, d in ((other, "2026-01-01"), (later, "2026-01-03"))}
    assert later not in day_of[other] and other in day_of[other] and html_id in day_of[other]
    assert later in day_of[later] and other not in day_of[later]
    assert later in admin.get("/quarantine?date_from=2026-01-02").text
    bad = admin.get("/quarantine?date_from=yesterday")
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text
    page = admin.get(f"/quarantine/{html_id}").text
    frame = re.search(r"<iframe[^>]*>", page)
    assert frame and 'sandbox=""' in frame.group(0)
    assert "<script>" not in page and "&lt;script&gt;" in frame.group(0)
    assert "Message-ID" in admin.get(f"/quarantine/{html_id}?view=headers").text
    download = admin.get(f"/quarantine/{html_id}/raw")
    assert download.content == raw
    assert download.headers["content-disposition"] == f'attachment; filename="{html_id}.eml"'


def test_every_action_is_logged_with_who_did_it_and_logout_ends_the_session(
        web_app, admin, caplog):
    held = hold(web_app, "alice", spam("logged"))
    owner = Browser(web_app)
    with caplog.at_level("INFO", logger="ie.web"):
        owner.login_link(login_link(web_app, "alice"))
        owner.post("/quarantine/action", {"action": "delete", "ids": held})
        owner.post("/logout", {})
    lines = [r.getMessage() for r in caplog.records if r.name == "ie.web"]
    assert any("actor=alice" in line and "action=login method=link" in line for line in lines)
    assert any("actor=alice" in line and "action=quarantine_delete" in line
               and f"ids={held}" in line for line in lines)
    assert any("actor=alice" in line and "action=logout" in line for line in lines)
    assert owner.get("/quarantine").url.path == "/login"
    history = admin.get("/quarantine/history").text
    assert "<td>deleted</td><td>alice</td>" in history


def test_a_login_lasts_the_session_lifetime_however_active(make_app):
    app = make_app(**WEB, **{"web.session_lifetime": 2.0})  # no database involved: SQLite
    credentials.set_password(app, "root", ADMIN_PASSWORD)
    b = Browser(app)
    b.login("root", ADMIN_PASSWORD)
    assert b.get("/quarantine").url.path == "/quarantine"
    cookie = b.client.cookies["ie_web"]
    time.sleep(2.5)  # the signed cookie carries real time, not the test clock
    assert b.get("/quarantine").url.path == "/login"
    b.client.cookies.set("ie_web", cookie)  # an old copy of the cookie is no better
    assert b.get("/quarantine").url.path == "/login"


def test_the_pages_of_a_disabled_plugin_are_left_out(make_app):
    app = make_app(**WEB, **{"plugins.disabled": ["quarantine"]})
    credentials.set_password(app, "root", ADMIN_PASSWORD)
    b = Browser(app)
    r = b.login("root", ADMIN_PASSWORD)
    assert r.url.path == "/monitor"  # the first page left
    assert b.get("/quarantine").status_code == 404
    assert b.get("/settings").status_code == 404  # it needs the quarantine too
    none = make_app(**WEB, **{"plugins.disabled": ["quarantine", "ratelimit", "incoming"]})
    credentials.set_password(none, "root", ADMIN_PASSWORD)
    r = Browser(none).login("root", ADMIN_PASSWORD)
    assert r.status_code == 404 and "No pages to show" in r.text


def test_incoming_holds_are_marked_and_filtered_by_direction(web_app, admin):
    from ie_core import Action, Direction, Finding, MessageContext, Verdict
    from ie_plugins.quarantine import ie_hold

    ctx = MessageContext(direction=Direction.INCOMING, raw=spam("inbound"),
                         mail_from="x@outside.test", rcpt_tos=["alice@hosting.test"],
                         received_at=web_app.clock.now())
    ctx.identity.account = "alice"
    inbound = ie_hold(web_app, ctx, Verdict(Action.QUARANTINE, [Finding(
        stage="spam", reason="spam", score=30.0, action=Action.QUARANTINE)], 30.0))
    outbound = hold(web_app, "alice", spam("outbound"))
    page = admin.get("/quarantine").text
    assert page.count('<span class="tag in">incoming</span>') == 1
    only_in = admin.get("/quarantine?direction=incoming").text
    assert inbound in only_in and outbound not in only_in
    only_out = admin.get("/quarantine?direction=outgoing").text
    assert outbound in only_out and inbound not in only_out
