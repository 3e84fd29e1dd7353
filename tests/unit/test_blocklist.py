"""The sender and recipient blocklists: readings of hostile addresses, lookups with
scopes on each database, the stage in both directions, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ie_cli.main import ie_cli
from ie_core import Action, Direction, MessageContext
from ie_core.db.models import Account, DomainMap
from ie_core.processor import analyse
from ie_plugins.blocklist import store
from ie_plugins.blocklist.matching import candidates, header_addresses

RCPT = "alice@example.test"


@pytest.mark.parametrize("address", [
    "spam@blocked.test", "<SPAM@Blocked.TEST>", "spam@blocked.test.", "spam@blocked.test..",
    "spam@mail.blocked.test", '"spam"@blocked.test', "<@relay.test:spam@blocked.test>",
    "spam@blocked．test", "a@blocked.test@evil.test", '"a@blocked.test"@evil.test',
    "a%blocked.test@evil.test", "blocked.test!a@evil.test", " spam@blocked.test ",
])
def test_every_reading_of_a_crafted_address_is_matched(address):
    assert "blocked.test" in candidates([address])


def test_readings_do_not_match_lookalikes_and_keep_addresses_whole():
    assert candidates(["x@notblocked.test"]) == ["x@notblocked.test", "notblocked.test"]
    assert "blocked.test" not in candidates(["x@blocked.test.evil.test"])
    assert candidates(['"Boss"@Blocked.Test']) == ["boss@blocked.test", "blocked.test"]
    assert candidates(["x@Bücher.test"]) == ["x@xn--bcher-kva.test", "xn--bcher-kva.test"]
    assert candidates(["", "<>", "no-at-sign"]) == []


@pytest.mark.parametrize("value", [
    '"boss@blocked.test" <x@evil.test>',  # a display name claiming the address
    "=?utf-8?q?boss=40blocked.test?= <x@evil.test>",  # the same, encoded
    "x@evil.test, boss@blocked.test",  # a second address
    "boss@(comment)blocked.test",
    '"john doe"@blocked.test',
    "Boss <boss@blocked.test.>",
    "boss@blocked.test <x@evil.test>",  # unparseable as one address
])
def test_from_fields_are_read_every_way(value):
    assert "blocked.test" in candidates(header_addresses([value]))


def _app(make_app, db_url):
    return make_app(db_url=db_url, **{"identity.auth_header": ""})


def _incoming(app, mail_from="spam@blocked.test", rcpts=(RCPT,), from_header=None):
    raw = (f"From: {from_header or mail_from}\r\nSubject: s\r\n\r\nbody\r\n").encode()
    return MessageContext(direction=Direction.INCOMING, raw=raw, mail_from=mail_from,
                          rcpt_tos=list(rcpts), received_at=app.clock.now())


def _map_domains(app):
    with app.db.session() as s:  # the domain map: example.test is acme's, other.test beta's
        for domain, account in (("example.test", "acme"), ("other.test", "beta")):
            s.add(Account(name=account, created_at=app.clock.now()))
            s.flush()
            s.add(DomainMap(domain=domain, account=account))


def test_server_and_account_entries_refuse_or_junk(make_app, db_url):
    app = _app(make_app, db_url)
    _map_domains(app)
    store.add(app, "sender", "", ["blocked.test"], "")
    refused = analyse(app, _incoming(app))
    assert refused.action is Action.REJECT and refused.reasons == ["blocklist"]
    assert str(refused.smtp_reply) == "550 5.7.1 Sender blocked by policy"
    # the From header alone is enough
    assert analyse(app, _incoming(app, mail_from="ok@fine.test",
                                  from_header="Boss <boss@Blocked.Test.>")).action \
        is Action.REJECT
    app.settings.set("blocklist.sender_action", "junk")
    assert analyse(app, _incoming(app)).action is Action.JUNK
    store.add(app, "sender", "", ["blocked.test"], "refuse")  # the entry's own action wins
    assert analyse(app, _incoming(app)).action is Action.REJECT
    store.remove(app, "sender", "", ["blocked.test"])
    assert analyse(app, _incoming(app)).action is Action.DELIVER
    # an account's entry holds for its recipients only; refused only when all are
    store.add(app, "sender", "acme", ["spam@blocked.test"], "refuse")
    assert analyse(app, _incoming(app)).action is Action.REJECT
    assert analyse(app, _incoming(app, rcpts=("carol@other.test",))).action is Action.DELIVER
    mixed = analyse(app, _incoming(app, rcpts=(RCPT, "carol@other.test")))
    assert mixed.action is Action.JUNK and "1 of 2" in mixed.findings[0].detail
    assert analyse(app, _incoming(app, mail_from="other@blocked.test")).action is Action.DELIVER


def test_outgoing_to_a_blocked_recipient_is_refused(make_app, db_url):
    app = _app(make_app, db_url)
    store.add(app, "recipient", "", ["rival.test"], "")
    store.add(app, "recipient", "acme", ["boss@partner.test"], "")

    _map_domains(app)

    def out(rcpts, sender="a@example.test"):  # example.test: account acme
        return MessageContext(direction=Direction.OUTGOING,
                              raw=b"From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n",
                              mail_from=sender, rcpt_tos=list(rcpts),
                              received_at=app.clock.now())

    refused = analyse(app, out(["x@mail.Rival.test.", "ok@fine.test"]))
    assert refused.action is Action.REJECT
    assert str(refused.smtp_reply) == "550 5.7.1 Recipient blocked by policy: rival.test"
    assert analyse(app, out(["Boss@Partner.test"])).action is Action.REJECT  # acme's entry
    assert analyse(app, out(["boss@partner.test"], "b@other.test")).action \
        is not Action.REJECT  # beta may write to boss
    assert analyse(app, out(["ok@fine.test"])).action is not Action.REJECT


def _cli(config: Path, *args: str):
    return CliRunner().invoke(ie_cli, ["--config", str(config), "blocklist", *args])


def test_cli_shapes_and_errors(make_app, db_url, tmp_path):
    make_app(db_url=db_url)
    config = tmp_path / "cli.toml"
    config.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n')
    added = _cli(config, "sender", "add", "Spam@Blocked.TEST", "bücher.test")
    assert added.exit_code == 0, added.output
    assert added.output.splitlines() == [
        "Adding sender(s) to the blocklist of the server:", "1. email     spam@blocked.test",
        "2. domain    xn--bcher-kva.test", "OK"]
    assert json.loads(_cli(config, "sender", "add", "junk.test", "--account", "acme",
                           "--action", "junk", "--json").output) == {"success": True}
    listed = json.loads(_cli(config, "sender", "list", "--json").output)
    assert (listed["emails"], listed["domains"]) == (["spam@blocked.test"],
                                                     ["xn--bcher-kva.test"])
    everything = json.loads(_cli(config, "sender", "list", "--all", "--json").output)
    assert {"value": "junk.test", "type": "domain", "account": "acme", "action": "junk"} \
        in everything["items"]
    text = _cli(config, "sender", "list", "--account", "acme").output
    assert text.splitlines() == ["EMAILS", "No available data", "", "DOMAINS",
                                 "junk.test (account acme, junk)"]
    for args in (["sender", "add", "a@@b"], ["sender", "add", "ok.test", "exa mple.com"],
                 ["sender", "add", "x.test", "--account", "../etc"],
                 ["sender", "remove", "never.test"], ["recipient", "add", "x.test",
                                                      "--action", "junk"],
                 ["sender", "list", "--all", "--account", "acme"]):
        result = _cli(config, *args)
        assert result.exit_code != 0, args
        assert "Traceback" not in result.output, result.output
        assert "error" in result.output.strip().splitlines()[-1].lower(), result.output
    assert json.loads(_cli(config, "sender", "list", "--json").output)["domains"] == [
        "xn--bcher-kva.test"]  # nothing of the refused commands was added
    assert _cli(config, "recipient", "add", "rival.test", "-a", "acme").exit_code == 0
    removed = _cli(config, "recipient", "delete", "rival.test", "-a", "acme", "--json")
    assert json.loads(removed.output) == {"success": True}


def test_hostile_from_fields_are_read_whole(make_app, db_url):
    """Thousands of addresses, a megabyte without separators, a thousand labels: the
    blocked address at the end is still found (the lookups go in chunks) and nothing
    grows with the square of the input."""
    app = _app(make_app, db_url)
    store.add(app, "sender", "", ["blocked.test"], "refuse")
    many = ", ".join(f"user{n}@host{n}.example" for n in range(3000)) + ", x@blocked.test"
    huge = "a" * 1_000_000 + "@" * 50_000 + "b" * 100_000 + " x@mail.blocked.test"
    deep = "x@" + "a." * 1000 + "blocked.test"
    for value in (many, huge, deep):
        ctx = _incoming(app, mail_from="ok@fine.test", from_header=value)
        assert analyse(app, ctx).action is Action.REJECT, value[:80]
    assert analyse(app, _incoming(app, mail_from="ok@fine.test",
                                  from_header="a" * 1_000_000)).action is Action.DELIVER
