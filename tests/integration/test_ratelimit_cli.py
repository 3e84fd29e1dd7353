"""``ie-cli am``: server settings, per-object limits and stats, through the real console
script against the database the filter writes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from ie_cli.main import ie_cli
from ie_core import Action, Direction, MessageContext, Outcome, Result
from ie_core.db.models import Account, DomainMap
from ie_core.processor import analyse, record
from tests.fixtures.daemon import write_config

CLI = str(Path(sys.executable).parent / "ie-cli")
DEFAULTS = {"account": 0, "domain": 0, "script": 0, "sender_email": 0, "limit_mode": 1}


@pytest.fixture
def env(make_app, db_url, tmp_path, clock):
    clock.set(datetime.now(UTC))  # the CLI's clock is the system's
    app = make_app(db_url=db_url, **{"pipeline.outgoing": ["whitelist", "ratelimit"]})
    with app.db.session() as s:
        for account, domain in (("alice", "example.com"), ("zed", "other.org")):
            s.add(Account(name=account, created_at=clock.now()))
            s.add(DomainMap(domain=domain, account=account))
    cfg = write_config(tmp_path / "cli.toml", {"ie.data_dir": str(tmp_path / "data"),
                                               "ie.database_url": app.config.database_url})
    return app, cfg


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def cli(cfg: Path, *args: str, ok: bool = True, real: bool = False) -> Run:
    """ie-cli in this process (CliRunner), or with ``real`` the installed console script."""
    if real:
        p = subprocess.run([CLI, "--config", str(cfg), *args], capture_output=True,
                           text=True, timeout=60)
        r = Run(p.returncode, p.stdout, p.stderr)
    else:
        res = CliRunner().invoke(ie_cli, ["--config", str(cfg), *args])
        r = Run(res.exit_code, res.stdout, res.stderr)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def cli_json(cfg: Path, *args: str) -> dict:
    return json.loads(cli(cfg, *args, "--json").stdout)


def send(app, sender: str, headers: bytes = b"") -> Action:
    ctx = MessageContext(direction=Direction.OUTGOING, mail_from=sender, rcpt_tos=["r@x.org"],
                         raw=headers + b"Subject: s\r\n\r\nbody\r\n",
                         received_at=app.clock.now())
    verdict = analyse(app, ctx)
    outcome = (Outcome(Result.DELIVERED) if verdict.action is Action.DELIVER
               else Outcome.held(ctx.id))
    record(app, ctx, verdict, outcome, time.monotonic())
    return verdict.action


def test_server_settings_show_and_set(env):
    app, cfg = env
    real = cli(cfg, "am", "server-settings", "--json", real=True)
    assert json.loads(real.stdout) == DEFAULTS
    new = cli_json(cfg, "am", "server-settings", "set", "--sender-email", "2", "--domain", "7",
                   "--account", "-1", "--limit-mode", "2")
    assert new == {**DEFAULTS, "sender_email": 2, "domain": 7, "limit_mode": 2}
    assert cli_json(cfg, "am", "server-settings") == new
    # am prints JSON without --json, as Imunify's does (issue 16)
    assert json.loads(cli(cfg, "am", "server-settings").stdout) == new
    set_text = cli(cfg, "am", "server-settings", "set", "--script", "0").stdout
    assert set_text.startswith("New server settings is:\n")
    assert json.loads(set_text.split("\n", 1)[1]) == new
    for bad in (["--limit-mode", "3"], ["--account", "-5"], ["--domain", "ten"]):
        r = cli(cfg, "am", "server-settings", "set", "--script", "9", *bad, ok=False,
                real=bad[0] == "--domain")
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert cli_json(cfg, "am", "server-settings") == new


def _node(items: list[dict], name: str) -> dict:
    return next(i for i in items if i["name"] == name)


def test_stats_tree_filters_pagination_and_limit_set(env):
    app, cfg = env
    cli(cfg, "am", "server-settings", "set", "--sender-email", "2")
    app.settings.invalidate()
    script = b"X-PHP-Script: example.com/wp/mailer.php for 10.0.0.1\r\n"
    results = [send(app, "bob@example.com") for _ in range(3)]
    results += [send(app, "carol@example.com", script), send(app, "dan@other.org")]
    assert results == [Action.DELIVER] * 2 + [Action.QUARANTINE] + [Action.DELIVER] * 2

    data = cli_json(cfg, "am", "stats")
    assert [a["name"] for a in data["accounts"]] == ["alice", "zed"]
    alice = data["accounts"][0]
    assert {k: alice[k] for k in ("messages", "quarantined", "limit", "rateLimited",
                                  "whitelisted", "exclusion")} == {
        "messages": 3, "quarantined": 1, "limit": 0, "rateLimited": False,
        "whitelisted": False, "exclusion": False}
    [domain] = alice["domains"]
    assert domain["name"] == "example.com" and domain["account_id"] == alice["id"]
    bob = _node(domain["sender_emails"], "bob@example.com")
    assert (bob["messages"], bob["quarantined"], bob["limit"], bob["rateLimited"]) == \
        (2, 1, 2, True)
    assert bob["domain_id"] == domain["id"]
    [mailer] = alice["scripts"]
    assert mailer["name"] == "example.com/wp/mailer.php" and mailer["messages"] == 1
    assert mailer["account_id"] == alice["id"]

    # filters and pagination (accounts are paged)
    assert [a["name"] for a in cli_json(cfg, "am", "stats", "--limit", "1", "--offset", "1")
            ["accounts"]] == ["zed"]
    assert [a["name"] for a in cli_json(cfg, "am", "stats", "--limit", "1")["accounts"]] == \
        ["alice"]
    assert [a["name"] for a in cli_json(cfg, "am", "stats", "--account-name", "ZED")
            ["accounts"]] == ["zed"]
    only_carol = cli_json(cfg, "am", "stats", "--sender-email", "carol@example.com")
    assert [[e["name"] for d in a["domains"] for e in d["sender_emails"]]
            for a in only_carol["accounts"]] == [["carol@example.com"]]
    assert [a["name"] for a in cli_json(cfg, "am", "stats", "--domain", "other.org")
            ["accounts"]] == ["zed"]
    assert cli_json(cfg, "am", "stats", "--script-name", "nothing.php") == {"accounts": []}
    assert "account alice" in cli(cfg, "am", "stats", "--text").stdout
    assert json.loads(cli(cfg, "am", "stats").stdout)["accounts"][0]["name"] == "alice"

    # ids are stable across processes and usable with `am limit set`
    again = cli_json(cfg, "am", "stats")
    assert again == data
    r = cli(cfg, "am", "limit", "set", "--id", bob["id"], "--so-type", "sender_email",
            "--limit", "5")
    assert r.stdout.strip() == "OK"
    bob2 = _node(cli_json(cfg, "am", "stats")["accounts"][0]["domains"][0]["sender_emails"],
                 "bob@example.com")
    assert (bob2["id"], bob2["limit"], bob2["exclusion"], bob2["rateLimited"]) == \
        (bob["id"], 5, True, False)
    assert [send(app, "bob@example.com") for _ in range(4)] == \
        [Action.DELIVER] * 3 + [Action.QUARANTINE]
    cli(cfg, "am", "limit", "set", "--id", bob["id"], "--so-type", "sender_email",
        "--limit", "-1")
    bob3 = _node(cli_json(cfg, "am", "stats")["accounts"][0]["domains"][0]["sender_emails"],
                 "bob@example.com")
    assert (bob3["limit"], bob3["exclusion"], bob3["messages"]) == (2, False, 5)

    # the whitelist tier shows in stats
    cli(cfg, "whitelist", "sender", "add", "other.org")
    zed = cli_json(cfg, "am", "stats", "--account-name", "zed")["accounts"][0]
    assert zed["domains"][0]["whitelisted"] is True and zed["whitelisted"] is False


def test_limit_set_bad_input_is_one_line_and_changes_nothing(env):
    app, cfg = env
    send(app, "bob@example.com")
    before = cli_json(cfg, "am", "stats")
    alice = before["accounts"][0]
    domain_id = alice["domains"][0]["id"]
    cases = [
        ["--id", alice["id"], "--so-type", "mailbox", "--limit", "3"],
        ["--id", "not-a-uuid", "--so-type", "account", "--limit", "3"],
        ["--id", domain_id, "--so-type", "account", "--limit", "3"],
        ["--id", alice["id"], "--so-type", "account", "--limit", "-5"],
        ["--id", alice["id"], "--so-type", "account", "--limit", "lots"],
        ["--id", "00000000-0000-0000-0000-000000000000", "--so-type", "account",
         "--limit", "3"],
    ]
    for args in cases:
        r = cli(cfg, "am", "limit", "set", *args, ok=False, real=args[1] == "not-a-uuid")
        assert r.returncode != 0, args
        assert r.stderr.startswith("ie-cli: error: "), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "is a domain, not a account" in cli(cfg, "am", "limit", "set", *cases[2],
                                                ok=False).stderr
    for args in (["--since", "yesterday"], ["--limit", "0"], ["--offset", "-1"]):
        r = cli(cfg, "am", "stats", *args, ok=False)
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert cli_json(cfg, "am", "stats") == before


def test_values_an_integer_column_cannot_hold_are_one_line(env):
    app, cfg = env
    send(app, "bob@example.com")
    alice = cli_json(cfg, "am", "stats")["accounts"][0]
    r = cli(cfg, "am", "limit", "set", "--id", alice["id"], "--so-type", "account",
            "--limit", "3000000000", ok=False)
    assert r.returncode != 0
    assert r.stderr.strip() == ("ie-cli: error: --limit takes 0 (unlimited), a number up to "
                                "2147483647 or -1 (remove the override), not 3000000000")
    r = cli(cfg, "am", "stats", "--since", "99999999d", ok=False, real=True)
    assert r.returncode != 0
    assert r.stderr.strip() == "ie-cli: error: --since 99999999d is longer than ten years"
    cli(cfg, "am", "limit", "set", "--id", alice["id"], "--so-type", "account",
        "--limit", "2147483647")
    assert cli_json(cfg, "am", "stats", "--since", "2w")["accounts"][0]["limit"] == 2**31 - 1
