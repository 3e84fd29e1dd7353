"""The ``ie-web`` program and its command lines: ``ie-cli web admin-password``, two
ie-web processes on one database accepting each other's logins, ``ie-config status``,
bad configuration, and the owner digest carrying a login link that opens the account."""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ie_core.db.models import Account
from tests.fixtures.paths import BIN
from tests.fixtures.sink import free_port
from tests.fixtures.web import ADMIN_PASSWORD, WEB, Browser, csrf_of, hold, spam


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "IE_CONFIG"}


class Site:
    def __init__(self, tmp_path: Path, db_url: str, sink_port: int) -> None:
        self.tmp = tmp_path
        self.ports = [free_port(), free_port()]
        self.config = tmp_path / "web.toml"
        self.config.write_text(f"""
[ie]
data_dir = "{tmp_path / 'data'}"
database_url = "{db_url}"
hostname = "mx.example.net"

[filter]
reinject = "127.0.0.1:{sink_port}"
outgoing_listen = "127.0.0.1:{free_port()}"
incoming_listen = "127.0.0.1:{free_port()}"
metrics_listen = ""

[quarantine]
cli_socket = ""

[web]
listen = "127.0.0.1:{self.ports[0]}"
secure_cookie = false
public_url = "https://mail.example.net"
""")
        self.procs: list[subprocess.Popen[bytes]] = []

    def run(self, program: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / program), "--config", str(self.config), *args],
                              input=stdin, capture_output=True, text=True, timeout=60,
                              env=_env())

    def start(self, port: int) -> str:
        log = (self.tmp / f"web-{port}.log").open("ab")
        self.procs.append(subprocess.Popen(
            [str(BIN / "ie-web"), "--config", str(self.config), "--listen", f"127.0.0.1:{port}"],
            stdout=log, stderr=log, env=_env()))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/login", timeout=2)
                return url
            except httpx.TransportError:
                if time.monotonic() > deadline or self.procs[-1].poll() is not None:
                    raise AssertionError((self.tmp / f"web-{port}.log").read_text()) from None
                time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait(10)

    def web_status(self) -> dict:
        out = self.run("ie-config", "status", "--json")
        [item] = [i for i in json.loads(out.stdout)["items"] if i["name"] == "web"]
        return item


@pytest.fixture
def site(make_app, db_url, sink, tmp_path):
    make_app(db_url=db_url)  # the schema
    s = Site(tmp_path, db_url, sink.port)
    yield s
    s.stop()


def _login(client: httpx.Client, name: str, password: str) -> httpx.Response:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"name": name, "password": password, "csrf": token})


def test_two_ie_web_processes_share_logins_and_status_reports_them(site):
    assert site.run("ie-cli", "web", "admin-password", "--password-stdin",
                    stdin="short\n").stderr == (
        "ie-cli: error: the password must have at least 10 characters\n")
    done = site.run("ie-cli", "web", "admin-password", "--password-stdin",
                    stdin=ADMIN_PASSWORD + "\n")
    assert done.returncode == 0 and done.stdout == "OK\n", done.stderr
    down = site.web_status()
    assert not down["ok"] and "not answering" in down["detail"]

    first, second = site.start(site.ports[0]), site.start(site.ports[1])
    with httpx.Client(base_url=first) as one:
        r = _login(one, "root", ADMIN_PASSWORD)
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = one.cookies["ie_web"]
    with httpx.Client(base_url=second, cookies={"ie_web": cookie}) as two:
        page = two.get("/quarantine")
        assert page.status_code == 200 and "<span>admin</span>" in page.text
    up = site.web_status()
    assert up["ok"] and f"127.0.0.1:{site.ports[0]}" in up["detail"]

    # an owner: by the link root prints, then by the password root sets
    link = site.run("ie-cli", "web", "login-link", "alice")
    assert link.stdout.startswith("https://mail.example.net/login/link?token="), link.stderr
    with httpx.Client(base_url=second) as owner:
        page = owner.get(link.stdout.strip().removeprefix("https://mail.example.net")).text
        token = re.search(r'name="token" value="([^"]+)"', page)
        assert token
        r = owner.post("/login/link", data={"token": token.group(1), "csrf": csrf_of(page)})
        assert r.status_code == 303
        assert "account <b>alice</b>" in owner.get("/quarantine").text
    assert site.run("ie-cli", "web", "owner-password", "alice", "--password-stdin",
                    stdin="alice password 1\n").stdout == "OK\n"
    with httpx.Client(base_url=first) as owner:
        assert _login(owner, "alice", "alice password 1").status_code == 303
    # a new admin password ends the admin's sessions, in every ie-web process
    assert site.run("ie-cli", "web", "admin-password", "--password-stdin",
                    stdin="another admin password\n").stdout == "OK\n"
    with httpx.Client(base_url=second, cookies={"ie_web": cookie}) as two:
        assert two.get("/quarantine").headers.get("location", "").startswith("/login")


def test_bad_configuration_is_one_line_and_exit_2(site):
    bad = site.run("ie-web", "--listen", "nowhere")
    assert bad.returncode == 2
    assert bad.stderr == "ie-web: error: --listen must be HOST:PORT, not 'nowhere'\n"
    link = site.run("ie-cli", "web", "login-link", "../etc")
    assert link.returncode == 1 and link.stderr.startswith("ie-cli: error: invalid account")


def test_the_owner_digest_carries_a_link_that_opens_only_that_account(
        make_app, db_url, sink, site):
    app = make_app(db_url=db_url, **{**WEB, "web.public_url": "https://mail.example.net",
                                     "filter.reinject": f"127.0.0.1:{sink.port}"})
    with app.db.session() as s:
        s.add(Account(name="alice", owner_email="alice@owner.example",
                      created_at=app.clock.now()))
    mine = hold(app, "alice", spam("digest me"))
    theirs = hold(app, "bob", spam("not alice's"))
    sent = site.run("ie-cli", "notify", "send", "--account", "alice", "--json")
    assert sent.returncode == 0, sent.stderr
    [digest] = [m for m in sink.handler.messages if m.rcpt_tos == ["alice@owner.example"]]
    text = email.message_from_bytes(digest.data).get_payload(0).get_payload(decode=True)
    found = re.search(rb"https://mail\.example\.net(/login/link\?token=[\w.\-]+)", text)
    assert found, text
    owner = Browser(app)
    owner.login_link(found.group(1).decode())
    page = owner.get("/quarantine").text
    assert mine in page and theirs not in page
