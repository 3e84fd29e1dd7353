"""ie-web driven by a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, through Selenium; nothing is downloaded): the admin and an owner
click through the quarantine, and every page is photographed.

Screenshots go to a temporary folder; with ``IE_WEB_SCREENSHOTS=1`` they replace the
ones in ``docs/web/`` that docs/web.md shows.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ie_plugins.quarantine.service import Caller, QuarantineService
from ie_plugins.web import credentials
from ie_plugins.web.signing import login_link
from tests.fixtures.web import ADMIN_PASSWORD, WEB, WebServer, hold, spam

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "web"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
           "chromium-driver)")


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = DOCS_SHOTS if os.environ.get("IE_WEB_SCREENSHOTS") == "1" else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def chromium() -> Iterator[object]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,860", "--lang=en-US"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def site(make_app, sink):
    app = make_app(**WEB, **{"filter.reinject": f"127.0.0.1:{sink.port}"})
    credentials.set_password(app, "root", ADMIN_PASSWORD)
    server = WebServer(app).start()
    yield app, server
    server.stop()


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def _load(driver, element) -> None:
    """Click ``element`` and wait until the next page has replaced this one (the old
    page's window carries a mark the new one does not have)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.ieOldPage = true")
    element.click()
    WebDriverWait(driver, 15).until(lambda d: d.execute_script(
        "return window.ieOldPage === undefined && document.readyState === 'complete'"))


def _ticked(driver, held_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'input[name="ids"][value="{held_id}"]').click()


def _press(driver, action: str) -> None:
    from selenium.webdriver.common.by import By

    _load(driver, driver.find_element(By.CSS_SELECTOR,
                                      f'button[name="action"][value="{action}"]'))


def test_admin_filters_views_releases_and_deletes(site, sink, chromium, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    app, server = site
    driver = chromium
    gtube_raw = spam("Cheap watches", to="carol@example.net")
    gtube = hold(app, "alice", gtube_raw, to="carol@example.net")
    html = hold(app, "alice", spam("Newsletter", html=True))
    other = hold(app, "bob", spam("Invoice attached"), reason="winexec")
    app.clock.advance(seconds=60)

    driver.get(server.url + "/quarantine")  # not logged in: the login form
    assert driver.current_url.startswith(server.url + "/login")
    driver.save_screenshot(str(shots / "login.png"))
    driver.find_element(By.NAME, "name").send_keys("root")
    driver.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    _load(driver, driver.find_element(By.CSS_SELECTOR, "form.login button"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#held tbody tr[data-id]")
    assert {r.get_attribute("data-id") for r in rows} == {gtube, html, other}
    driver.save_screenshot(str(shots / "quarantine-admin.png"))

    # filter: account alice, reason spam, recipient carol
    driver.find_element(By.NAME, "account").send_keys("alice")
    Select(driver.find_element(By.NAME, "reason")).select_by_visible_text("spam")
    driver.find_element(By.NAME, "recipient").send_keys("carol")
    _load(driver, driver.find_element(By.ID, "filter"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#held tbody tr[data-id]")
    assert [r.get_attribute("data-id") for r in rows] == [gtube]
    assert "account=alice" in driver.current_url
    driver.save_screenshot(str(shots / "quarantine-filtered.png"))

    # the GTUBE message's headers
    _load(driver, driver.find_element(By.CSS_SELECTOR, f'tr[data-id="{gtube}"] a.open'))
    _load(driver, driver.find_element(By.ID, "view-headers"))
    headers = _text(driver, "#headers")
    assert "Subject Cheap watches" in headers and "<Cheap-watches@hosting.test>" in headers
    driver.save_screenshot(str(shots / "message-headers.png"))
    _load(driver, driver.find_element(By.ID, "view-text"))
    assert "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE" in _text(driver, "#text")

    # release it from its page: the sink gets exactly the held bytes, once
    _press(driver, "release")
    assert "1 message(s) released" in _text(driver, ".flash.ok")
    assert len(sink.handler.messages) == 1
    got = sink.handler.messages[0]
    head, rest = got.data.split(b"\r\n", 1)
    assert head.startswith(b"X-IE-Released: by=root at=") and head.endswith(gtube.encode())
    assert rest == gtube_raw and got.rcpt_tos == ["carol@example.net"]

    # an HTML body is shown in a sandboxed frame: its script never ran
    driver.get(f"{server.url}/quarantine/{html}")
    frame = driver.find_element(By.CSS_SELECTOR, "iframe.body")
    assert frame.get_attribute("sandbox") == ""
    assert driver.title != "owned"
    driver.save_screenshot(str(shots / "message-rendered.png"))

    # delete another from the list
    driver.get(server.url + "/quarantine")
    _ticked(driver, other)
    _press(driver, "delete")
    assert "1 message(s) deleted" in _text(driver, ".flash.ok")
    assert {r.get_attribute("data-id") for r in driver.find_elements(
        By.CSS_SELECTOR, "#held tbody tr[data-id]")} == {html}
    assert len(sink.handler.messages) == 1

    # a form whose CSRF token is taken out is refused, and nothing happens
    _ticked(driver, html)
    driver.execute_script("document.querySelectorAll('input[name=csrf]')"
                          ".forEach(e => e.remove())")
    _press(driver, "delete")
    assert "403 Forbidden" in driver.find_element(By.TAG_NAME, "body").text
    assert [i["email_id"] for i in QuarantineService(app).emails_list(Caller.root())["items"]
            ] == [html]

    driver.get(server.url + "/quarantine/history")
    history = _text(driver, "#history")
    assert re.search(r"released root alice alice@hosting.test carol@example.net Cheap", history)
    assert re.search(r"deleted root bob", history)
    driver.save_screenshot(str(shots / "history.png"))


def test_owner_through_a_digest_link_sees_only_their_mail_up_to_the_release_cap(
        site, sink, chromium, shots):
    from selenium.webdriver.common.by import By

    app, server = site
    driver = chromium
    QuarantineService(app).accounts_edit(Caller.root(), "alice", releases_limit="2")
    mine = [hold(app, "alice", spam(f"Offer {n}")) for n in range(3)]
    theirs = hold(app, "bob", spam("Bob's offer"))
    link = login_link(app, "alice")
    assert link is not None

    driver.get(link.replace(WEB["web.public_url"], server.url))
    driver.save_screenshot(str(shots / "login-link.png"))
    _load(driver, driver.find_element(By.CSS_SELECTOR, "main form button"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#held tbody tr[data-id]")
    assert {r.get_attribute("data-id") for r in rows} == set(mine)
    assert "Releases left this hour: 2 of 2" in _text(driver, "#releases-left")
    assert not driver.find_elements(By.NAME, "account")  # no account filter for owners
    driver.save_screenshot(str(shots / "quarantine-owner.png"))

    _ticked(driver, mine[0])
    _ticked(driver, mine[1])
    _press(driver, "release")
    assert "2 message(s) released" in _text(driver, ".flash.ok")
    assert "Releases left this hour: 0 of 2" in _text(driver, "#releases-left")
    _ticked(driver, mine[2])
    _press(driver, "release")
    assert "not released, still held" in _text(driver, ".flash.error")
    assert len(sink.handler.messages) == 2
    driver.save_screenshot(str(shots / "quarantine-owner-cap.png"))

    # another account's message answers exactly like an id that does not exist
    driver.get(f"{server.url}/quarantine/{theirs}")
    forged = _text(driver, "main").replace(theirs, "ID")
    unknown = str(uuid.uuid4())
    driver.get(f"{server.url}/quarantine/{unknown}")
    assert _text(driver, "main").replace(unknown, "ID") == forged
    assert "no held message with id ID" in forged

    driver.get(server.url + "/account")
    assert "Account alice" in _text(driver, "h1")
    driver.save_screenshot(str(shots / "account.png"))


def test_admin_sets_a_limit_and_whitelists_from_the_activity_monitor(make_app, chromium,
                                                                    shots):
    """The Activity Monitor in the browser: a sender's limit set from its row holds its
    next message; whitelisting it goes through the confirmation page.  Settings and
    Statistics are photographed too."""
    from selenium.webdriver.common.by import By

    from ie_core import Action
    from ie_core.db.models import Account, DomainMap
    from ie_plugins.incoming.models import IncomingDaily
    from ie_plugins.whitelist import store as whitelist
    from tests.integration.test_ratelimit_cli import send

    app = make_app(**WEB, **{"pipeline.outgoing": ["whitelist", "ratelimit"]})
    credentials.set_password(app, "root", ADMIN_PASSWORD)
    with app.db.session() as s:
        s.add(Account(name="alice", created_at=app.clock.now()))
        s.flush()
        s.add_all([DomainMap(domain="example.com", account="alice"),
                   IncomingDaily(day=app.clock.now().date(), account="alice", spam=3,
                                 legitimate=12, unfiltered=0)])
    for sender in ("bob@example.com", "bob@example.com", "news@example.com"):
        send(app, sender)
    server = WebServer(app).start()
    driver = chromium
    try:
        driver.get(server.url + "/login")
        driver.find_element(By.NAME, "name").send_keys("root")
        driver.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
        _load(driver, driver.find_element(By.CSS_SELECTOR, "form.login button"))
        _load(driver, driver.find_element(By.LINK_TEXT, "Activity"))
        row = driver.find_element(By.CSS_SELECTOR, 'tr[data-name="bob@example.com"]')
        row.find_element(By.NAME, "limit").send_keys("2")
        _load(driver, row.find_element(By.CSS_SELECTOR, "form.inline button"))
        assert "Limit of sender_email bob@example.com: 2 an hour" in _text(driver, "p.flash")
        assert send(app, "bob@example.com") is Action.QUARANTINE
        driver.refresh()
        row = driver.find_element(By.CSS_SELECTOR, 'tr[data-name="bob@example.com"]')
        assert "over limit" in row.text
        driver.save_screenshot(str(shots / "activity-monitor.png"))

        row = driver.find_element(By.CSS_SELECTOR, 'tr[data-name="news@example.com"]')
        _load(driver, row.find_element(By.CSS_SELECTOR, "a.whitelist"))
        assert whitelist.entries(app, "sender") == []  # nothing before the confirmation
        driver.save_screenshot(str(shots / "whitelist-confirm.png"))
        _load(driver, driver.find_element(By.ID, "confirm"))
        assert whitelist.entries(app, "sender") == ["news@example.com"]

        _load(driver, driver.find_element(By.LINK_TEXT, "Settings"))
        driver.save_screenshot(str(shots / "settings.png"))
        _load(driver, driver.find_element(By.LINK_TEXT, "Statistics"))
        assert driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        driver.save_screenshot(str(shots / "statistics.png"))
    finally:
        server.stop()
