"""Incoming score bands and greylisting: the decision on each database, the client
network from our MTA's own Received line, the thresholds' order in filter-settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ie_cli.main import ie_cli
from ie_core import Action, Direction, MessageContext
from ie_core.processor import analyse
from ie_plugins.incoming import bands
from ie_plugins.incoming.greylist import Greylist, GreylistEntry, client_network
from tests.fixtures import score_plugin

RCPT = "alice@example.test"
POSTFIX_TOP = ("Received: from mail.sender.test (mail.sender.test [{addr}])\r\n"
               "\tby mx.example.test (Postfix) with ESMTP id 4Xc1Yz2abc\r\n"
               "\tfor <alice@example.test>; Sat,  5 Dec 2026 12:00:00 +0000 (UTC)\r\n")


def _raw(score: float | None = None, addr: str = "203.0.113.7", extra: str = "") -> bytes:
    top = POSTFIX_TOP.format(addr=addr) if addr else ""
    scored = f"X-Test-Score: {score}\r\n" if score is not None else ""
    return (f"{top}{extra}{scored}From: s@sender.test\r\nSubject: hi\r\n\r\nbody\r\n").encode()


def _app(make_app, db_url, **settings):
    app = make_app(db_url=db_url, plugins=[("testscore", score_plugin)],
                   **{"classify.incoming_backend": "testscore"})
    app.settings.set("incoming.enabled", True)
    for name, value in settings.items():
        app.settings.set(name, value)
    return app


def _ctx(app, raw: bytes, rcpts=(RCPT,), mail_from="s@sender.test") -> MessageContext:
    return MessageContext(direction=Direction.INCOMING, raw=raw, mail_from=mail_from,
                          rcpt_tos=list(rcpts), received_at=app.clock.now())


BANDS = {"incoming.greylist_threshold": 10.0, "incoming.reject_threshold": 20.0,
         "incoming.greylist_delay": 300}


def test_four_bands_and_greylisting_until_the_delay(make_app, db_url, clock):
    app = _app(make_app, db_url, **BANDS)
    assert analyse(app, _ctx(app, _raw(1))).action is Action.DELIVER
    assert analyse(app, _ctx(app, _raw(7))).action is Action.JUNK
    refused = analyse(app, _ctx(app, _raw(25)))
    assert refused.action is Action.REJECT and str(refused.smtp_reply).startswith("550 5.7.1")
    first = analyse(app, _ctx(app, _raw(12)))
    assert first.action is Action.TEMPFAIL and first.reasons == ["spam", "greylist"]
    assert str(first.smtp_reply) == "451 4.7.1 Greylisted, please try again in 300 seconds"
    clock.advance(seconds=120)
    early = analyse(app, _ctx(app, _raw(12)))
    assert str(early.smtp_reply) == "451 4.7.1 Greylisted, please try again in 180 seconds"
    clock.advance(seconds=181)
    assert analyse(app, _ctx(app, _raw(12))).action is Action.JUNK  # the retry passes
    clock.advance(days=10)
    assert analyse(app, _ctx(app, _raw(15))).action is Action.JUNK  # still passed
    # another network, sender or recipient is another triplet
    assert analyse(app, _ctx(app, _raw(12, addr="203.0.114.7"))).action is Action.TEMPFAIL
    assert analyse(app, _ctx(app, _raw(12), mail_from="t@sender.test")).action \
        is Action.TEMPFAIL
    # the same /24 is the same client
    assert analyse(app, _ctx(app, _raw(12, addr="203.0.113.200"))).action is Action.JUNK


def test_triplets_expire(make_app, db_url, clock):
    app = _app(make_app, db_url, **BANDS)
    analyse(app, _ctx(app, _raw(12)))
    clock.advance(seconds=app.config.get("incoming.greylist_retry_window") + 1)
    assert analyse(app, _ctx(app, _raw(12))).action is Action.TEMPFAIL  # forgotten: anew
    clock.advance(seconds=301)
    assert analyse(app, _ctx(app, _raw(12))).action is Action.JUNK
    clock.advance(seconds=app.config.get("incoming.greylist_pass_ttl") + 1)
    assert Greylist.from_app(app).prune(app) == 1  # passed, then not seen for too long
    assert analyse(app, _ctx(app, _raw(12))).action is Action.TEMPFAIL


def test_whitelists_mixed_recipients_and_dry_run_skip_greylisting(make_app, db_url):
    app = _app(make_app, db_url, **BANDS)
    from ie_plugins.whitelist import store as whitelist
    whitelist.add(app, "recipient", ["bob@example.test"])
    whitelist.add(app, "sender", ["friend.test"])
    # a whitelisted recipient among them: the bands do not apply, junk for the others
    mixed = analyse(app, _ctx(app, _raw(25), rcpts=(RCPT, "bob@example.test")))
    assert mixed.action is Action.JUNK
    assert analyse(app, _ctx(app, _raw(12), mail_from="a@mail.friend.test")).action \
        is Action.JUNK
    dry = _ctx(app, _raw(12))
    dry.dry_run = True
    assert analyse(app, dry).action is Action.TEMPFAIL
    with app.db.session() as s:
        assert s.query(GreylistEntry).count() == 0  # nothing written by either


@pytest.mark.parametrize(("received", "network"), [
    (POSTFIX_TOP.format(addr="198.51.100.77"), "198.51.100.0/24"),
    (POSTFIX_TOP.format(addr="IPv6:2001:db8:1:2:3::9"), "2001:db8:1:2::/64"),
    (POSTFIX_TOP.format(addr="IPv6:::ffff:192.0.2.9"), "192.0.2.0/24"),
    # a HELO cannot hold a space, so it cannot write Postfix's comment for it
    ("Received: from [1.2.3.4] (unknown [192.0.2.1])\r\n\tby mx (Postfix) with ESMTP "
     "id 4Xc1Yz2abc\r\n", "192.0.2.0/24"),
    # not Postfix's layout at the top: nothing is read, a lower line is never used
    ("Received: from x ([10.9.9.9]) by attacker\r\n" + POSTFIX_TOP.format(addr="10.1.1.1"),
     "unknown"),
    ("", "unknown"),
    (POSTFIX_TOP.format(addr="999.1.1.1"), "unknown"),
    # Exim: "from [ADDR] (helo=...)" or "from VERIFIED.NAME ([ADDR]:port helo=...)"
    ("Received: from [198.51.100.5] (helo=[10.0.0.9])\r\n\tby mx.example.test with esmtp "
     "(Exim 4.96)\r\n\t(envelope-from <a@b.test>)\r\n\tid 1tQabc-000123-AB\r\n",
     "198.51.100.0/24"),
    ("Received: from mail.b.test ([2001:db8:5::1]:4711 helo=x)\r\n\tby mx with esmtp "
     "(Exim 4.96)\r\n\tid 1tQabc-000123-AB\r\n", "2001:db8:5::/64"),
    # a local submission: the login, then the HELO name the client chose
    ("Received: from alice (helo=[10.0.0.9])\r\n\tby mx with local-esmtp (Exim 4.96)\r\n"
     "\tid 1tQabc-000123-AB\r\n", "unknown"),
])
def test_client_network_comes_from_our_received_line(received, network):
    below = "Received: from evil (evil [10.0.0.1]) by mx (Postfix) id 4ABCDEFG\r\n"
    raw = (received + (below if received else "") + "Subject: x\r\n\r\nbody\r\n").encode()
    ctx = MessageContext(direction=Direction.INCOMING, raw=raw, mail_from="", rcpt_tos=[RCPT],
                         received_at=None)  # type: ignore[arg-type]
    assert client_network(ctx) == network


def _settings(config: Path, *args: str):
    return CliRunner().invoke(ie_cli, ["--config", str(config), "filter-settings", *args,
                                       "--json"])


def test_filter_settings_show_the_bands_and_keep_them_in_order(make_app, db_url, tmp_path):
    make_app(db_url=db_url)
    config = tmp_path / "cli.toml"
    config.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n')
    shown = json.loads(_settings(config).output)
    assert {k: shown[k] for k in ("classify.incoming_threshold", *BANDS)} == {
        "classify.incoming_threshold": 5.0, "incoming.greylist_threshold": 0.0,
        "incoming.reject_threshold": 0.0, "incoming.greylist_delay": 300}
    ok = _settings(config, "--incoming-greylist-threshold", "8",
                   "--incoming-reject-threshold", "15")
    assert ok.exit_code == 0, ok.output
    for args, low, high in [
        (["--incoming-reject-threshold", "7"], "greylist", "reject"),
        (["--classify-incoming-threshold", "9"], "junk", "greylist"),
        (["--incoming-greylist-threshold", "4"], "junk", "greylist"),
        (["--incoming-greylist-threshold", "0", "--incoming-reject-threshold", "3"],
         "junk", "reject"),
    ]:
        result = _settings(config, *args)
        assert result.exit_code != 0
        line = result.output.strip()
        assert "\n" not in line and "Traceback" not in line
        assert f"{low} (" in line and f"is above {high} (" in line, line
    shown = json.loads(_settings(config, "--incoming-greylist-threshold", "0").output)
    assert (shown["incoming.greylist_threshold"], shown["incoming.reject_threshold"]) \
        == (0.0, 15.0)  # off is in order; refused changes left nothing behind
    assert bands.thresholds_in_order({"classify.incoming_threshold": 5.0}) is None
    assert _settings(config, "--incoming-greylist-threshold", "default").exit_code == 0


def test_the_greylist_state_is_shared_by_two_apps_on_one_database(make_app, db_url, clock):
    one = _app(make_app, db_url, **BANDS)
    two = _app(make_app, db_url)
    assert analyse(one, _ctx(one, _raw(12))).action is Action.TEMPFAIL
    clock.advance(seconds=301)
    assert analyse(two, _ctx(two, _raw(12))).action is Action.JUNK  # the other node's row
    assert analyse(two, _ctx(two, _raw(12), rcpts=("x@example.test",))).action \
        is Action.TEMPFAIL
