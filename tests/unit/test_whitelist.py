"""Whitelists: strict parsing, lookups with subdomains, the bypass stage, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from ie_cli.main import ie_cli
from ie_core import Action, Bypass, Direction, InvalidInput, MessageContext
from ie_core.processor import analyse
from ie_plugins.whitelist import store
from ie_plugins.whitelist.addresses import parse_entry
from tests.fixtures.daemon import write_config

CLI = str(Path(sys.executable).parent / "ie-cli")
BAD = ["a@@b", "exa mple.com", "a" * 300 + ".com", "x@" + "a" * 300 + ".com", "",
       "@example.com", "bob@", "bob", "-bad.example.com", "a..b@example.com",
       "example.c", "bob@exa_mple.com"]


@pytest.mark.parametrize("text", BAD)
@pytest.mark.parametrize("kind", ["authuser", "sender", "recipient"])
def test_invalid_values_are_refused(kind, text):
    with pytest.raises(InvalidInput):
        parse_entry(kind, text)


def test_values_are_normalised():
    assert parse_entry("sender", "Bob@Example.COM.") == "bob@example.com"
    assert parse_entry("sender", "Example.COM") == "example.com"
    assert parse_entry("recipient", "bücher.de") == "xn--bcher-kva.de"
    with pytest.raises(InvalidInput, match="email addresses only"):
        parse_entry("authuser", "example.com")


def test_domains_cover_subdomains_but_not_lookalikes(make_app, db_url):
    app = make_app(db_url=db_url)
    store.add(app, "sender", ["example.com", "carol@other.org"])
    assert app.hooks.is_whitelisted(app, "sender", "bob@example.com")
    assert app.hooks.is_whitelisted(app, "sender", "BOB@mail.Example.com")
    assert app.hooks.is_whitelisted(app, "sender", "mail.example.com")
    assert not app.hooks.is_whitelisted(app, "sender", "bob@badexample.com")
    assert not app.hooks.is_whitelisted(app, "sender", "bob@example.com.evil.net")
    assert app.hooks.is_whitelisted(app, "sender", "carol@other.org")
    assert not app.hooks.is_whitelisted(app, "sender", "dave@other.org")
    assert not app.hooks.is_whitelisted(app, "recipient", "bob@example.com")


def test_lookups_agree_and_the_authuser_list_matches_whole_addresses(make_app, db_url):
    app = make_app(db_url=db_url)
    store.add(app, "authuser", ["example.com", "u@example.org"])  # a domain only by hand
    store.add(app, "sender", ["example.com", "u@mail.example.com"])
    for kind, address, entry in [("authuser", "u@example.com", None),
                                 ("authuser", "U@Example.org", "u@example.org"),
                                 ("sender", "u@mail.example.com", "u@mail.example.com"),
                                 ("sender", "v@mail.example.com", "example.com"),
                                 ("recipient", "u@example.com", None)]:
        assert store.matching_entry(app, kind, address) == entry, (kind, address)
        assert store.is_listed(app, kind, address) is (entry is not None), (kind, address)


def _ctx(mail_from: str, raw: bytes = b"Subject: x\r\n\r\nbody\r\n") -> MessageContext:
    return MessageContext(direction=Direction.OUTGOING, raw=raw, mail_from=mail_from,
                          rcpt_tos=["r@example.org"], received_at=None)  # type: ignore


def _authed(login: str) -> bytes:
    """A message as Postfix hands it over after a SASL login as ``login``."""
    return (b"Received: from x (x [10.0.0.1]) (Authenticated sender: " + login.encode() +
            b") by y (Postfix) with ESMTPSA id 4ABCDE1; now\r\n\r\nb\r\n")


def _local(uid: int) -> bytes:
    """A message as Postfix's pickup hands it over for local user ``uid`` (sendmail)."""
    return (b"Received: by y (Postfix, from userid " + str(uid).encode() +
            b") id 4ABCDE2; now\r\n\r\nb\r\n")


def test_stage_ends_the_pipeline_for_whitelisted_senders(make_app, clock):
    seen = []

    class Later:
        @staticmethod
        def ie_stages(app):
            from ie_core import Finding, Stage

            def run(ctx):
                seen.append(ctx.mail_from)
                return Finding(stage="spamcheck", reason="spam", action=Action.QUARANTINE)
            return [Stage(name="spamcheck", run=run, priority=400)]

    from ie_core import hookimpl
    Later.ie_stages = hookimpl(Later.ie_stages)
    app = make_app(plugins=[("later", Later)],
                   **{"pipeline.outgoing": ["whitelist", "spamcheck"]})
    store.add(app, "sender", ["example.com"])
    store.add(app, "authuser", ["auth@hosted.net"])
    ctx = _ctx("bob@sub.example.com", _authed("bob@sub.example.com"))
    ctx.received_at = clock.now()
    verdict = analyse(app, ctx)
    assert verdict.action is Action.DELIVER
    assert verdict.findings[0].stage == "whitelist" and verdict.findings[0].final
    assert verdict.bypass is Bypass.CONTENT  # a typed bypass, not a note in ctx.data
    assert verdict.findings[0].detail == "example.com is on the sender whitelist"
    assert seen == []
    authed = _ctx("anything@elsewhere.org",
                  b"Received: from x (x [10.0.0.1]) (Authenticated sender: auth@hosted.net)"
                  b" by y (Postfix) with ESMTPSA id 4ABCDE1; now\r\n\r\nb\r\n")
    authed.received_at = clock.now()
    assert analyse(app, authed).bypass is Bypass.ALL
    other = _ctx("bob@other.org")
    other.received_at = clock.now()
    assert analyse(app, other).action is Action.QUARANTINE
    assert seen == ["bob@other.org"]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def _cli(cfg: Path, *args: str, real: bool = False) -> Run:
    """ie-cli in this process (CliRunner), or with ``real`` the installed console script."""
    if real:
        p = subprocess.run([CLI, "--config", str(cfg), *args], capture_output=True,
                           text=True, timeout=60)
        return Run(p.returncode, p.stdout, p.stderr)
    res = CliRunner().invoke(ie_cli, ["--config", str(cfg), *args])
    return Run(res.exit_code, res.stdout, res.stderr)


@pytest.fixture
def cli_config(make_app, db_url, tmp_path):
    app = make_app(db_url=db_url)
    cfg = write_config(tmp_path / "cli.toml", {"ie.data_dir": str(tmp_path / "data"),
                                               "ie.database_url": app.config.database_url})
    return cfg, app


def test_cli_add_list_remove(cli_config):
    cfg, app = cli_config
    r = _cli(cfg, "whitelist", "sender", "add", "Example.com", "bob@other.org", real=True)
    assert r.returncode == 0, r.stderr
    assert "not filtered" in r.stderr
    r = _cli(cfg, "whitelist", "sender", "list", "--json", real=True)
    assert json.loads(r.stdout) == {"success": True, "emails": ["bob@other.org"],
                                    "domains": ["example.com"]}
    text = _cli(cfg, "whitelist", "sender", "list").stdout
    assert text.splitlines() == ["EMAILS", "bob@other.org", "", "DOMAINS", "example.com"]
    r = _cli(cfg, "whitelist", "authuser", "add", "u@example.com")
    assert r.returncode == 0 and "not filtered" not in r.stderr
    assert _cli(cfg, "whitelist", "sender", "remove", "example.com").returncode == 0
    assert store.entries(app, "sender") == ["bob@other.org"]
    assert store.entries(app, "authuser") == ["u@example.com"]


@pytest.mark.parametrize("args", [
    ("sender", "add", "good.example.com", "a@@b"),
    ("sender", "add", "exa mple.com"),
    ("recipient", "add", "a" * 300 + ".com"),
    ("authuser", "add", "example.com"),
    ("sender", "remove", "kept.example.com", "absent.example.com"),
    ("sender", "add", "alice"),
])
def test_cli_bad_input_is_one_line_and_changes_nothing(cli_config, args):
    cfg, app = cli_config
    store.add(app, "sender", ["kept.example.com"])
    r = _cli(cfg, "whitelist", *args, real="a@@b" in args)
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("ie-cli: error: ")
    for kind in ("authuser", "sender", "recipient"):
        assert store.entries(app, kind) == (["kept.example.com"] if kind == "sender" else [])


def _spam_after_whitelist(make_app, **config):
    from ie_core import Finding, Stage, hookimpl

    class Spam:
        @hookimpl
        def ie_stages(self, app):
            return [Stage(name="spamcheck", priority=400, run=lambda ctx: Finding(
                stage="spamcheck", reason="spam", action=Action.QUARANTINE))]
    return make_app(plugins=[("spam", Spam())],
                    **{"pipeline.outgoing": ["whitelist", "spamcheck", "ratelimit"], **config})


def test_a_forged_envelope_sender_does_not_pass_for_a_whitelisted_one(make_app, clock):
    """Issue 13, hole 5: MAIL FROM is the client's word."""
    app = _spam_after_whitelist(make_app)
    store.add(app, "sender", ["partner.example"])
    for raw in (b"Subject: x\r\n\r\nb\r\n", _authed("mallory@evil.example")):
        ctx = _ctx("ceo@partner.example", raw)
        ctx.received_at = clock.now()
        assert analyse(app, ctx).reasons == ["spam"], raw
    ctx = _ctx("ceo@partner.example", _authed("ceo@partner.example"))
    ctx.received_at = clock.now()
    assert analyse(app, ctx).action is Action.DELIVER


def test_a_local_user_passes_only_for_its_own_accounts_domains(make_app, clock):
    import pwd

    user = pwd.getpwnam("daemon")  # a Unix user that is not a system user ie skips
    app = _spam_after_whitelist(make_app, **{"identity.userdomains_file": "/nonexistent"})
    store.add(app, "sender", ["partner.example", "shop.example"])
    runner = CliRunner()
    cfg = write_config(Path(str(app.config.data_dir)).parent / "wl.toml",
                       {"ie.data_dir": str(app.config.data_dir)})
    assert runner.invoke(ie_cli, ["--config", str(cfg), "domains", "set", "shop.example",
                                  user.pw_name]).exit_code == 0
    assert runner.invoke(ie_cli, ["--config", str(cfg), "domains", "set",
                                  "partner.example", "partner"]).exit_code == 0
    app.settings.invalidate()
    own = _ctx("info@shop.example", _local(user.pw_uid))
    own.received_at = clock.now()
    other = _ctx("ceo@partner.example", _local(user.pw_uid))
    other.received_at = clock.now()
    assert analyse(app, own).action is Action.DELIVER
    assert analyse(app, other).reasons == ["spam"]


def test_a_whitelisted_sender_still_counts_against_the_accounts_limit(make_app, clock):
    app = _spam_after_whitelist(make_app)
    store.add(app, "sender", ["partner.example"])
    cfg = write_config(Path(str(app.config.data_dir)).parent / "rl.toml",
                       {"ie.data_dir": str(app.config.data_dir)})
    done = CliRunner().invoke(ie_cli, ["--config", str(cfg), "am", "server-settings", "set",
                                       "--account", "2"])
    assert done.exit_code == 0, done.output
    actions = []
    for _ in range(3):
        ctx = _ctx("ceo@partner.example", _authed("ceo@partner.example"))
        ctx.received_at = clock.now()
        verdict = analyse(app, ctx)
        actions.append((verdict.action, verdict.reasons))
    assert actions == [(Action.DELIVER, []), (Action.DELIVER, []),
                       (Action.QUARANTINE, ["ratelimit"])]
