"""Every example of the Imunify Email documentation's ``ie-cli`` section, replayed against
ours: the same command line runs (the installed ``ie-cli``, as root) and its output has
the documented shape, so an admin's scripts written for Imunify Email keep working.

Source: the "Imunify Email Command-Line Interface" section of the Imunify360
documentation (github.com/cloudlinux/imunify360-documentation, docs/email/README.md,
published at https://docs.imunify360.com/email/).  Ids and names differ from the
documentation's (ours are made here); the layouts, keys and types are compared.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ie_core import (
    Action,
    Direction,
    Finding,
    MessageContext,
    Outcome,
    Result,
    Verdict,
    create_app,
)
from ie_core.db import migrate
from ie_core.processor import analyse, record
from ie_plugins.quarantine import ie_hold
from tests.fixtures.daemon import write_config

CLI = str(Path(sys.executable).parent / "ie-cli")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
RULE = r"-{100,}"


@pytest.fixture
def imunify(tmp_path, sink):
    """A server with mail held for two accounts, and send records for am."""
    cfg = write_config(tmp_path / "ie.toml", {
        "ie.data_dir": str(tmp_path / "data"), "filter.reinject": f"127.0.0.1:{sink.port}",
        "pipeline.outgoing": ["ratelimit"]})
    app = create_app(str(cfg))
    migrate.upgrade(app.db)
    held = {}
    for account, rcpt, subject in (("mws", "me@somehost.com", "Ge t G:eneric V1agra"),
                                   ("oregdent", "steve@hillcabinet.com", "FWD:Xanax.x")):
        ctx = MessageContext(Direction.OUTGOING, f"From: {account}@mywebsite.com\r\nSubject: "
                             f"{subject}\r\nTo: <{rcpt}>\r\n\r\nbody\r\n".encode(),
                             f"{account}@mywebsite.com", [rcpt], app.clock.now())
        ctx.identity.account = account
        verdict = Verdict(Action.QUARANTINE, [Finding("classify", "spam", 6.1,
                                                      Action.QUARANTINE)], 6.1)
        held[account] = ie_hold(app, ctx, verdict)
    ctx = MessageContext(Direction.OUTGOING, b"Subject: s\r\n\r\nb\r\n", "test@domain.com",
                         ["x@example.org"], app.clock.now())
    record(app, ctx, analyse(app, ctx), Outcome(Result.DELIVERED), 0.0)
    app.close()
    return cfg, held


def run(cfg: Path, line: str) -> str:
    """One documented command line (without ``ie-cli``), as the shell would split it."""
    args = line.split()
    out = subprocess.run([CLI, "--config", str(cfg), *args], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, (line, out.stderr)
    return out.stdout


def shape(value: Any) -> Any:
    """The JSON value with every leaf replaced by its type's name."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


def test_emails_list_text_blocks(imunify):
    cfg, _ = imunify
    lines = run(cfg, "emails list -a root --since 24h").splitlines()
    assert re.fullmatch(RULE, lines[0])
    assert re.fullmatch(rf"Email_ID {UUID}", lines[1])
    assert re.fullmatch(r"Size_Bytes\t +\d+", lines[2])
    assert re.fullmatch(r"Account_Name\t +(mws|oregdent)", lines[3])
    assert re.fullmatch(r"Recipients\t +\S+@\S+", lines[4])
    assert re.fullmatch(r"Subject +\t +.+", lines[5])
    assert lines[-2:] == ["-" * 107, "Max Count\t     2"]
    short = run(cfg, "emails list -l 1 -s 3600").splitlines()  # short flags; 3600 seconds
    assert short.count("-" * 107) == 2 and short[-1] == "Max Count\t     2"


def test_emails_list_json(imunify):
    cfg, _ = imunify
    data = json.loads(run(cfg, "emails list -a root --json"))
    documented = {"email_id": "str", "size_bytes": "int", "account_name": "str",
                  "recipients": ["str"], "subject": "str",
                  "script_header": {"raw": "str", "domain": "str", "path": "str"}}
    item = shape(data)["items"][0]
    assert {k: item[k] for k in documented} == documented  # ours adds fields, never fewer
    assert data["max_count"] == 2
    assert data["items"][0]["script_header"] == {"raw": "", "domain": "", "path": ""}


def test_emails_show(imunify):
    cfg, held = imunify
    text = run(cfg, f"emails show --id {held['mws']} -a root")
    fields = dict(re.findall(r"^(\w+):\s+(.*)$", text, re.M))
    assert fields["EmailID"] == held["mws"]
    assert fields["SizeBytes"].isdigit() and fields["AccountName"] == "mws"
    assert fields["Sender"] == "mws@mywebsite.com" and fields["Recipients"] == "me@somehost.com"
    assert fields["ReceivedDate"].isdigit()  # a Unix time
    assert fields["Subject"] == "Ge t G:eneric V1agra"
    assert re.search(r"^To:\s+<me@somehost.com>$", text, re.M)
    assert re.search(r"^Body: body$", text, re.M)


def test_release_and_remove(imunify, sink):
    cfg, held = imunify
    assert run(cfg, f"emails release --ids {held['mws']} -a root") == "OK\n"
    assert len(sink.wait_for(1)) == 1
    assert run(cfg, f"emails remove --ids {held['oregdent']} -a root") == "OK\n"


def test_accounts_list_and_edit(imunify):
    cfg, _ = imunify
    lines = run(cfg, "accounts list").splitlines()
    assert lines[0].split()[:6] == ["Name", "LimitBytes", "UsedBytes", "State",
                                    "ReleasesLimit", "(hourly)"]
    assert lines[1].split()[:4][::3] == ["mws", "active"]
    assert lines[-1] == "Max Count 2"
    data = json.loads(run(cfg, "accounts list --json"))
    item = data["items"][0]
    assert {k: type(item[k]).__name__ for k in ("name", "limit_bytes", "used_bytes",
                                                "state")} == {
        "name": "str", "limit_bytes": "int", "used_bytes": "int", "state": "str"}
    assert data["max_count"] == 2

    row = run(cfg, "accounts edit -a mws --state=active --limit=8096").splitlines()
    assert row[0].split()[:4] == ["Name", "LimitBytes", "UsedBytes", "State"]
    assert row[1].split()[:2] == ["mws", "8096"]
    edited = json.loads(run(cfg, "accounts edit -a mws --state=active --limit=8096 --json"))
    assert (edited["name"], edited["limit_bytes"], edited["state"]) == ("mws", 8096, "active")

    listed = run(cfg, "accounts list --name=oregdent").splitlines()
    assert listed[0].split()[4:6] == ["ReleasesLimit", "(hourly)"]
    assert listed[1].split()[4] == "5"
    changed = run(cfg, "accounts edit --name=oregdent --releases-limit=50").splitlines()
    assert changed[1].split()[0] == "oregdent" and changed[1].split()[4] == "50"
    assert run(cfg, "accounts remove -a oregdent") == "OK\n"


def test_whitelist(imunify):
    cfg, _ = imunify
    assert run(cfg, "whitelist authuser list") == "EMAILS\nNo available data\n\nDOMAINS\n" \
                                                  "No available data\n"
    run(cfg, "whitelist authuser add me@mydomain.com")
    assert run(cfg, "whitelist authuser list").splitlines() == [
        "EMAILS", "me@mydomain.com", "", "DOMAINS", "No available data"]
    assert json.loads(run(cfg, "whitelist authuser list --json")) == {
        "success": True, "emails": ["me@mydomain.com"], "domains": []}
    assert run(cfg, "whitelist sender add domain.com some_email@domain.com") == (
        "Adding sender(s) to the whitelist:\n1. domain    domain.com\n"
        "2. email     some_email@domain.com\nOK\n")
    assert run(cfg, "whitelist sender remove domain.com") == (
        "Removing sender(s) from the whitelist:\n1. domain    domain.com\nOK\n")
    assert run(cfg, "whitelist sender delete some_email@domain.com").endswith("OK\n")


def test_quarantine_defaults(imunify):
    cfg, _ = imunify
    assert run(cfg, "quarantine-defaults list") == (
        "Setting          IntValue\nlimit_bytes      104857600\nreleases_limit   5\n")
    assert run(cfg, "quarantine-defaults set --releases-limit 50 --storage-capacity 120") == (
        "Setting          IntValue\nlimit_bytes      125829120\nreleases_limit   50\n")
    assert json.loads(run(cfg, "quarantine-defaults list --json")) == {
        "limit_bytes": 125829120, "releases_limit": 50}
    assert json.loads(run(cfg, "quarantine-defaults set -r 5 -s 100 --json")) == {
        "limit_bytes": 104857600, "releases_limit": 5}


def test_activity_monitor(imunify):
    cfg, _ = imunify
    settings = json.loads(run(cfg, "am server-settings"))
    assert shape(settings) == {"account": "int", "domain": "int", "limit_mode": "int",
                               "script": "int", "sender_email": "int"}
    out = run(cfg, "am server-settings set --limit-mode=2 --domain=100")
    assert out.startswith("New server settings is:\n{\n    \"account\": ")
    assert json.loads(out.split("\n", 1)[1])["domain"] == 100
    stats = json.loads(run(cfg, "am stats --since 10h"))
    [account] = stats["accounts"]
    documented = {"exclusion", "id", "limit", "messages", "name", "quarantined",
                  "rateLimited", "scripts", "whitelisted", "domains"}
    assert documented <= set(account) and account["scripts"] is None
    domain = account["domains"][0]
    assert {"account_id", "sender_emails", "exclusion", "id", "limit", "messages", "name",
            "quarantined", "rateLimited", "whitelisted"} <= set(domain)
    sender = domain["sender_emails"][0]
    assert sender["name"] == "test@domain.com" and {"account_id", "domain_id"} <= set(sender)
    assert json.loads(run(cfg, "am stats --sender-email=test@domain.com"))["accounts"]
    assert json.loads(run(cfg, f"am stats --account-name={account['name']} --since 30d"))
    for so_type, node in (("account", account), ("domain", domain),
                          ("sender_email", sender)):
        assert run(cfg, f"am limit set --id={node['id']} --limit=3 --so-type={so_type}") \
            == "OK\n"
