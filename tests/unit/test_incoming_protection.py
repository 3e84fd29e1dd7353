"""Incoming quarantine (per-recipient holds, owner commands, release to the incoming
side, the owner digest), trainers and Junk retention settings, on SQLite and
PostgreSQL."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ie_cli.main import ie_cli
from ie_core import Action, App, Direction, Finding, MessageContext, Verdict, carry_out
from ie_core.db.models import Account
from ie_core.processor import analyse
from ie_core.smtp.reinject import Reinjector
from ie_plugins.incoming import trainers
from ie_plugins.notify import compose
from ie_plugins.notify.models import Notification
from ie_plugins.notify.plan import DigestRequest, plan_digests
from ie_plugins.notify.service import Notifier
from ie_plugins.quarantine import ie_hold
from ie_plugins.quarantine.service import Caller, QuarantineService
from tests.fixtures.sink import free_port

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
ACME = Caller("acme", False)
RAW = (b"From: x@outside.test\r\nTo: a@acme.test\r\nSubject: cheap\r\nX-Spam: Yes\r\n"
       b"X-Spam-Flag: YES\r\n\r\nbuy\r\n")


def incoming_hold(app: App, account: str, rcpts: list[str]) -> str:
    ctx = MessageContext(direction=Direction.INCOMING, raw=RAW, mail_from="x@outside.test",
                         rcpt_tos=rcpts, received_at=app.clock.now())
    ctx.identity.account = account
    finding = Finding(stage="classify", reason="spam", score=812.5, action=Action.JUNK)
    held = ie_hold(app, ctx, Verdict(Action.JUNK, [finding], 812.5))
    assert held is not None
    return held


@pytest.fixture
def iapp(make_app, db_url, sink):
    # outgoing reinjection goes nowhere: a release that used it would fail
    return make_app(db_url=db_url, **{"filter.reinject": f"127.0.0.1:{free_port()}",
                                      "filter.incoming_reinject": f"127.0.0.1:{sink.port}",
                                      "filter.reinject_timeout": 5.0})


def test_owner_lists_and_releases_its_incoming_hold_to_the_incoming_side(iapp, sink):
    mine = incoming_hold(iapp, "acme", ["a@acme.test"])
    other = incoming_hold(iapp, "beta", ["c@beta.test"])
    service = QuarantineService(iapp)
    try:
        listed = service.emails_list(ACME, direction="incoming")["items"]
        assert [(i["email_id"], i["direction"], i["score"]) for i in listed] == [
            (mine, "incoming", 812.5)]
        assert service.emails_list(ACME, direction="outgoing")["items"] == []
        result = service.emails_release(ACME, f"{mine},{other}")
        assert result["done"] == [mine] and other in result["failed"]
    finally:
        service.close()
    [got] = sink.wait_for(1)
    assert got.rcpt_tos == ["a@acme.test"]
    head = got.data.split(b"\r\n\r\n", 1)[0]
    assert b"X-Spam" not in head and b"X-IE-Released: by=acme" in head  # forged marks gone


def test_a_bad_direction_is_one_line(tmp_path):
    config = tmp_path / "ie.toml"
    config.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\n')
    result = CliRunner().invoke(ie_cli, ["--config", str(config), "emails", "list",
                                         "--direction", "sideways"])
    assert result.exit_code != 0 and "sideways" in result.output


def _analyse(app: App, rcpts: list[str]) -> MessageContext:
    raw = (f"From: x@outside.test\r\nSubject: g\r\nX-PHP-Script: evil.test/x.php\r\n"
           f"\r\n{GTUBE}\r\n").encode()
    ctx = MessageContext(direction=Direction.INCOMING, raw=raw, mail_from="x@outside.test",
                         rcpt_tos=rcpts, received_at=app.clock.now())
    analyse(app, ctx)
    return ctx


def test_each_recipient_is_held_for_its_own_account_unless_whitelisted_or_off(
        make_app, db_url, tmp_path, sink):
    config = tmp_path / "ie.toml"
    config.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n')
    app = make_app(config=config, db_url=db_url,
                   **{"filter.incoming_reinject": f"127.0.0.1:{sink.port}"})
    for args in (("domains", "set", "acme.test", "acme"), ("domains", "set", "beta.test", "beta"),
                 ("domains", "set", "gamma.test", "gamma"),
                 ("accounts", "edit", "-a", "gamma", "--incoming-quarantine", "off"),
                 ("whitelist", "recipient", "add", "w@acme.test"),
                 ("filter-settings", "--incoming-enabled", "yes")):
        result = CliRunner().invoke(ie_cli, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
    rcpts = ["a@acme.test", "w@acme.test", "b@beta.test", "b2@beta.test", "g@gamma.test"]
    assert _analyse(app, rcpts).held_groups() == []  # no threshold: nothing held
    app.settings.set("incoming.quarantine_threshold", 500.0)
    ctx = _analyse(app, rcpts)
    assert [(g.hold_for, g.rcpt_tos) for g in ctx.held_groups()] == [
        ("acme", ["a@acme.test"]), ("beta", ["b@beta.test", "b2@beta.test"])]
    delivered = {r for g in ctx.delivery_groups() for r in g.rcpt_tos}
    assert delivered == {"w@acme.test", "g@gamma.test"}

    # carried out: gamma's and the whitelisted copy go downstream, one hold per account
    reinjector = Reinjector.from_config(app, "filter.incoming_reinject")
    try:
        reply = carry_out.process(app, ctx, reinjector)
        assert reply.ok, reply
        assert sorted(r for m in sink.wait_for(2) for r in m.rcpt_tos) == [
            "g@gamma.test", "w@acme.test"]
    finally:
        reinjector.close()
    service = QuarantineService(app)
    try:
        items = service.emails_list(Caller.root(), direction="incoming")["items"]
    finally:
        service.close()
    assert sorted((i["account_name"], tuple(i["recipients"]), i["script_header"]["raw"])
                  for i in items) == [("acme", ("a@acme.test",), ""),
                                      ("beta", ("b@beta.test", "b2@beta.test"), "")]
    app.settings.set("incoming.quarantine_threshold", 2000.0)  # GTUBE scores 1000
    assert _analyse(app, rcpts).held_groups() == []


def _digest(app: App, account: str) -> EmailMessage:
    notifier = Notifier(app)
    notifier.catch_up()
    [planned] = plan_digests(app, notifier.templates, DigestRequest(account=account))
    assert planned.count == 1
    with app.db.session() as s:
        row = s.scalars(select(Notification).where(Notification.kind == "owner_digest")).one()
    msg = email.message_from_bytes(row.message, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_the_owner_digest_lists_incoming_holds_with_score_and_id(make_app, db_url):
    app = make_app(db_url=db_url)
    with app.db.session() as s:
        s.add(Account(name="acme", owner_email="owner@acme.test", created_at=app.clock.now()))
    held = incoming_hold(app, "acme", ["a@acme.test"])
    msg = _digest(app, "acme")
    assert msg["Subject"].startswith("1 incoming message held as spam on")
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for expected in ("cheap", "x@outside.test", "a@acme.test", "Score:      812.5",
                     f"Id:         {held}", f"ie-cli emails release --ids {held}"):
        assert expected in text, expected
    assert "sent from your account" not in text  # no outgoing section
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert f"<td>{held}</td>" in html and "<td>812.5</td>" in html


def test_the_digest_offers_the_web_page_when_given_a_login_link(make_app):
    """The web plugin's login link (``login_link`` in the context) is shown in both
    sections."""
    app = make_app()
    templates = Notifier(app).templates
    messages = [compose.held_view(f"id-{d}", "acme", app.clock.now(), "x@outside.test",
                                  ["a@acme.test"], "s", ["spam"], 10, direction=d, score=9.0)
                for d in ("outgoing", "incoming")]
    context = {"hostname": "h", "now": "n", "admin_address": "a@h", "account": "acme",
               "messages": messages, "all_time": False, "period": "daily"}
    link = "https://panel.example/login/link?token=T"
    with_link = templates.render("owner_digest", "txt", {**context, "login_link": link})
    assert with_link.count(link) == 2
    assert link not in templates.render("owner_digest", "txt", context)
    html = templates.render("owner_digest", "html", {**context, "login_link": link})
    assert html.count(f'href="{link}"') == 2
    subject = templates.render("owner_digest", "subject", context)
    assert subject.startswith("1 of your outgoing messages is held, 1 incoming message")


def test_trainers_by_name_and_unix_group(make_app):
    app = make_app(**{"incoming.trainers": "Bob@Example.test, %mail"})
    assert trainers.may_train(app, "bob@example.test")
    assert trainers.may_train(app, "mail")  # the group's primary member
    assert not trainers.may_train(app, "alice@example.test")
    assert not trainers.may_train(app, None)
    assert trainers.may_train(make_app(), None)  # no list: everybody
    name = "spam.1.2.ab." + b"alice@example.test".hex()
    assert trainers.report_user(name) == "alice@example.test"
    for legacy in ("spam.1.2.ab", "spam.1.2.ab.-", "spam.1.2.ab.zz", "spam.1.2.ab.c3.x"):
        assert trainers.report_user(legacy) is None


@pytest.mark.parametrize("value", ["ten", "-1", "99999999", "1.5", "²", "9" * 5000])
def test_a_bad_junk_retention_is_one_line(make_app, tmp_path, value):
    config = tmp_path / "ie.toml"
    config.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\n')
    make_app(config=config)
    result = CliRunner().invoke(ie_cli, ["--config", str(config), "accounts", "edit", "-a",
                                         "acme", "--junk-retention", value])
    assert result.exit_code != 0
    assert "--junk-retention takes a number of days" in result.output
    assert "Traceback" not in result.output
