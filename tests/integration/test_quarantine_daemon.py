"""The quarantine through the real daemon and the real ``ie-cli`` (run as root here):
hold, list, show --raw, release to every recipient, eviction, failure paths, bad input,
and every command's JSON checked against a schema."""

from __future__ import annotations

import json
import smtplib
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from ie_cli.main import ie_cli
from ie_core import Action, Finding, ManualClock, Stage, hookimpl
from tests.fixtures.paths import IE_CLI
from tests.unit.test_quarantine_faults import database_locked, tmpfs

MARKER = b"HOLD-ME"
HOSTING = "hosting.test"


class MarkerPlugin:
    """Holds mail carrying the marker; mail from USER@hosting.test belongs to account USER."""

    @hookimpl
    def ie_stages(self, app):
        def run(ctx):
            if MARKER in ctx.raw:
                return Finding(stage="marker", reason="spam", score=9.0,
                               action=Action.QUARANTINE)
            return None
        return [Stage(name="marker", run=run, priority=450)]

    @hookimpl
    def ie_resolve_account(self, app, identity):
        if identity.domain == HOSTING and identity.sender_email:
            return identity.sender_email.split("@", 1)[0]
        return None


def message(subject: str = "hi", size: int = 0, to: str = "bob@example.org") -> bytes:
    raw = (f"From: Sender <sender@{HOSTING}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
           f"X-PHP-Script: {HOSTING}/wp/mail.php for 10.0.0.1\r\n\r\n").encode()
    raw += b"Body line.\r\n.line starting with a dot\r\n" + MARKER + b"\r\n"
    if size:
        raw += b"y" * (size - len(raw) - 2) + b"\r\n"
    return raw


def send(port: int, raw: bytes, account: str = "alice",
         rcpts: tuple[str, ...] = ("bob@example.org", "carol@example.net")) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo()
        s.mail(f"{account}@{HOSTING}")
        for r in rcpts:
            s.rcpt(r)
        code, reply = s.data(raw)
    assert code == 250, reply
    text = reply.decode()
    assert "held as " in text, text
    return text.rsplit("held as ", 1)[1].strip()


def write_config(path: Path, **sections: dict) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Cli:
    """``ie-cli`` as root: in-process through click's runner, or with ``real=True`` the
    console script in a subprocess; with ``user`` (uid, gid) always the real script run
    as that Unix user."""

    def __init__(self, config: Path, user: tuple[int, int] | None = None) -> None:
        self.config = config
        self.user = user

    def __call__(self, *args: str, check: bool = True, real: bool = False) -> Result:
        if self.user is None and not real:
            run = CliRunner().invoke(ie_cli, ["--config", str(self.config), *args],
                                     prog_name="ie-cli")
            result = Result(run.exit_code, run.stdout_bytes, run.stderr_bytes)
        else:
            cmd = [IE_CLI, "--config", str(self.config), *args]
            if self.user is not None:
                uid, gid = self.user
                cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *cmd]
            out = subprocess.run(cmd, capture_output=True, timeout=60,
                                 env={"PATH": "/usr/bin:/bin", "HOME": "/tmp",
                                      "LANG": "C.UTF-8"})
            result = Result(out.returncode, out.stdout, out.stderr)
        if check:
            assert result.returncode == 0, result.stderr.decode()
        return result

    def json(self, *args: str) -> dict:
        return json.loads(self(*args, "--json").stdout)


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes


# -- JSON schemas ---------------------------------------------------------------------
_STR_OR_NULL = {"type": ["string", "null"]}
EMAIL_ITEM = {
    "type": "object",
    "required": ["email_id", "size_bytes", "account_name", "recipients", "subject", "sender",
                 "received_date", "reasons", "score", "script_header"],
    "properties": {
        "email_id": {"type": "string", "format": "uuid"},
        "size_bytes": {"type": "integer", "minimum": 0},
        "account_name": {"type": "string"},
        "direction": {"enum": ["outgoing", "incoming"]},
        "recipients": {"type": "array", "items": {"type": "string"}},
        "subject": {"type": "string"},
        "sender": {"type": "string"},
        "received_date": {"type": "string", "format": "date-time"},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "score": {"type": "number"},
        "script_header": {"type": "object", "required": ["raw", "domain", "path"],
                          "properties": {"raw": _STR_OR_NULL, "domain": _STR_OR_NULL,
                                         "path": _STR_OR_NULL},
                          "additionalProperties": False},
    },
}
EMAILS_LIST = {"type": "object", "required": ["items", "max_count"],
               "properties": {"items": {"type": "array", "items": EMAIL_ITEM},
                              "max_count": {"type": "integer", "minimum": 0}},
               "additionalProperties": False}
EMAIL_SHOW = {"allOf": [EMAIL_ITEM, {
    "type": "object",
    "required": ["from", "quarantined_date", "state", "headers", "body"],
    "properties": {"from": {"type": "string"}, "state": {"enum": ["held", "releasing"]},
                   "quarantined_date": {"type": "string", "format": "date-time"},
                   "headers": {"type": "array", "items": {
                       "type": "object", "required": ["name", "value"],
                       "properties": {"name": {"type": "string"},
                                      "value": {"type": "string"}}}},
                   "body": {"type": "string"}}}]}
ACTION_RESULT = {"type": "object", "required": ["done", "failed"],
                 "properties": {"done": {"type": "array", "items": {"type": "string"}},
                                "failed": {"type": "object",
                                           "additionalProperties": {"type": "string"}}},
                 "additionalProperties": False}
ACCOUNTS_LIST = {"type": "object", "required": ["items", "max_count"], "properties": {
    "max_count": {"type": "integer"},
    "items": {"type": "array", "items": {
        "type": "object",
        "required": ["name", "limit_bytes", "used_bytes", "state", "releases_limit",
                     "deleted_last_hour"],
        "properties": {"name": {"type": "string"}, "limit_bytes": {"type": "integer"},
                       "used_bytes": {"type": "integer"},
                       "state": {"enum": ["active", "block"]},
                       "releases_limit": {"type": "integer"},
                       "deleted_last_hour": {"type": "integer"},
                       "incoming": {"enum": ["on", "off"]},  # the incoming plugin's switch
                       "incoming-quarantine": {"enum": ["on", "off"]},  # and its options
                       "junk-retention": {"type": "string", "pattern": "^(default|[0-9]+)$"},
                       "owner-email": {"type": "string"}},  # the accounts plugin's
        "additionalProperties": False}}}}
DEFAULTS = {"type": "object", "required": ["limit_bytes", "releases_limit"],  # Imunify's
            "properties": {"releases_limit": {"type": "integer", "minimum": 0},
                           "limit_bytes": {"type": "integer", "minimum": 0}},
            "additionalProperties": False}


def valid(instance: dict, schema: dict) -> dict:
    jsonschema.validate(instance, schema, format_checker=jsonschema.FormatChecker())
    return instance


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture
def clock() -> ManualClock:
    # The CLI runs in another process on the real clock; start ours there too.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def quarantine_daemon(run_daemon, sink, tmp_path, db_url):
    """(daemon, root's Cli) sharing one configuration."""
    values = {"ie": {"data_dir": str(tmp_path / "data"), "database_url": db_url},
              "filter": {"reinject": f"127.0.0.1:{sink.port}", "reinject_timeout": 5.0},
              "quarantine": {"cli_socket": str(tmp_path / "run" / "cli.sock")},
              "pipeline": {"outgoing": ["blocked", "marker"]}}
    config = write_config(tmp_path / "cli.toml", **values)
    overrides = {f"{s}.{k}": v for s, kv in values.items() for k, v in kv.items()}
    d = run_daemon(plugins=[("marker", MarkerPlugin())], **overrides)
    return d, Cli(config)


# -- acceptance -----------------------------------------------------------------------
def test_hold_list_show_raw_release_to_every_recipient(quarantine_daemon, sink):
    d, cli = quarantine_daemon
    raw = message(subject="=?utf-8?b?w6ljaG8=?=")
    rcpts = ("bob@example.org", "carol@example.net", "bcc-only@example.com")
    held = send(d.outgoing_port, raw, rcpts=rcpts)
    assert sink.messages == []
    listed = valid(cli.json("emails", "list"), EMAILS_LIST)
    [item] = listed["items"]
    assert listed["max_count"] == 1
    assert item["email_id"] == held and item["account_name"] == "alice"
    assert item["recipients"] == list(rcpts) and item["subject"] == "écho"
    assert item["sender"] == f"alice@{HOSTING}" and item["reasons"] == ["spam"]
    assert item["script_header"] == {"raw": f"{HOSTING}/wp/mail.php for 10.0.0.1",
                                     "domain": HOSTING, "path": "/wp/mail.php"}
    assert cli("emails", "show", "--id", held, "--raw", real=True).stdout == raw  # exact
    shown = valid(cli.json("emails", "show", "--id", held), EMAIL_SHOW)
    assert {"name": "Subject", "value": "écho"} in shown["headers"]
    assert ".line starting with a dot" in shown["body"]
    text = cli("emails", "show", "--id", held).stdout.decode()
    assert f"{'Subject:':30}écho" in text and f"{'Recipients:':30}bob@example.org" in text
    assert cli("emails", "release", "--ids", held).stdout == b"OK\n"
    [got] = sink.wait_for(1)
    assert got.rcpt_tos == list(rcpts) and got.mail_from == f"alice@{HOSTING}"
    header, rest = got.data.split(b"\r\n", 1)
    assert header.startswith(b"X-IE-Released: by=root at=") and header.endswith(held.encode())
    assert rest == raw
    assert cli.json("emails", "list")["max_count"] == 0
    out = cli("emails", "show", "--id", held, check=False)
    assert out.returncode == 1
    assert out.stderr.decode() == f"ie-cli: error: no held message with id {held}\n"


def test_a_release_removes_the_senders_forged_ie_headers(quarantine_daemon, sink):
    """Issue 13, 8a: a released message leaves like a delivered one, with only ie's own
    X-IE-* header (the forged ones are kept in the held copy, exactly as received)."""
    d, cli = quarantine_daemon
    forged = (b"X-IE-Filter-Action: deliver\r\nX-IE-Junk: all\r\n"
              b"X-IE-Released: by=root at=2026-01-01T00:00:00 id=forged\r\n")
    raw = forged + message(subject="forged")
    held = send(d.outgoing_port, raw)
    assert cli("emails", "show", "--id", held, "--raw", real=True).stdout == raw
    assert cli("emails", "release", "--ids", held).stdout == b"OK\n"
    [got] = sink.wait_for(1)
    head = got.data.split(b"\r\n\r\n", 1)[0]
    assert [line for line in head.split(b"\r\n") if line.lower().startswith(b"x-ie-")] == [
        head.split(b"\r\n", 1)[0]]
    assert head.startswith(b"X-IE-Released: by=root at=") and b"id=forged" not in got.data
    assert got.data.split(b"\r\n", 1)[1] == message(subject="forged")


def test_eviction_with_a_50_kb_limit(quarantine_daemon, clock):
    d, cli = quarantine_daemon
    cli("accounts", "edit", "-a", "alice", "--limit", str(50 * 1024))
    ids = []
    for size in (20, 20, 8, 15):  # KB: the 4th needs 63 > 50, so the oldest 20 KB goes
        ids.append(send(d.outgoing_port, message(size=size * 1024)))
        clock.advance(seconds=5)
    listed = cli.json("emails", "list", "-a", "alice")
    assert [i["email_id"] for i in listed["items"]] == ids[:0:-1]
    ids.append(send(d.outgoing_port, message(size=30 * 1024)))  # 43 + 30: two more go
    listed = cli.json("emails", "list")
    assert [i["email_id"] for i in listed["items"]] == [ids[4], ids[3]]
    accounts = valid(cli.json("accounts", "list"), ACCOUNTS_LIST)
    assert accounts["items"] == [{"name": "alice", "limit_bytes": 51200,
                                  "used_bytes": 45 * 1024, "state": "active",
                                  "releases_limit": 5, "deleted_last_hour": 3,
                                  "incoming": "on", "incoming-quarantine": "on",
                                  "junk-retention": "default", "owner-email": ""}]
    assert cli.json("accounts", "list", "--name", "alice")["items"][0]["deleted_last_hour"] == 3


@pytest.mark.parametrize(("mode", "code"), [("tempfail", "451"), ("reject", "554")])
def test_refused_release_stays_held_and_cli_says_why(quarantine_daemon, sink, mode, code):
    d, cli = quarantine_daemon
    held = send(d.outgoing_port, message())
    sink.handler.mode = mode
    out = cli("emails", "release", "--ids", held, check=False, real=True)
    assert out.returncode == 1 and out.stdout == b""
    lines = out.stderr.decode().splitlines()
    assert lines[0].startswith(f"{held}: not released, still held: the MTA refused it: {code}")
    assert lines[-1] == "ie-cli: error: 1 of 1 failed"
    assert [i["email_id"] for i in cli.json("emails", "list")["items"]] == [held]
    result = json.loads(cli("emails", "release", "--ids", held, "--json", check=False).stdout)
    valid(result, ACTION_RESULT)
    sink.handler.mode = "accept"
    assert cli("emails", "release", "--ids", held).stdout == b"OK\n"
    assert len(sink.wait_for(1)) == 1


def test_remove_block_purge_and_defaults(quarantine_daemon, sink):
    d, cli = quarantine_daemon
    a = send(d.outgoing_port, message())
    result = valid(json.loads(cli("emails", "remove", "--ids", a, "--json").stdout),
                   ACTION_RESULT)
    assert result == {"done": [a], "failed": {}}
    cli("accounts", "edit", "-a", "mallory", "--state", "block")
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=30) as s:
        s.sendmail(f"mallory@{HOSTING}", ["x@example.org"], b"Subject: clean\r\n\r\nhi\r\n")
    [item] = cli.json("emails", "list", "-a", "mallory")["items"]
    assert item["reasons"] == ["blocked"] and sink.messages == []
    assert cli("accounts", "remove", "-a", "mallory").stdout == b"OK\n"
    assert cli.json("emails", "list")["max_count"] == 0
    valid(cli.json("quarantine-defaults", "list"), DEFAULTS)
    cli("quarantine-defaults", "set", "--releases-limit", "9", "--storage-capacity", "200")
    assert cli.json("quarantine-defaults", "list") == {"limit_bytes": 200 * 1024 * 1024,
                                                       "releases_limit": 9}
    cli("quarantine-defaults", "set", "--storage-capacity", "-1")
    assert cli.json("quarantine-defaults", "list")["limit_bytes"] == 100 * 1024 * 1024


BAD_INPUT = [
    (["emails", "show", "--id", "12345"], "malformed message id: '12345'"),
    (["emails", "release", "--ids", "00000000-0000-0000-0000-000000000000,zz"],
     "malformed message id: 'zz'"),
    (["emails", "show", "--id", "00000000-0000-0000-0000-000000000000"],
     "no held message with id 00000000-0000-0000-0000-000000000000"),
    (["emails", "list", "--since", "5x"], "--since takes a number and a unit"),
    (["emails", "list", "--limit", "-3"], "--limit must be between 1 and 1000, not -3"),
    (["accounts", "edit", "-a", "alice", "--limit", "-1"], "--limit must be between"),
    (["accounts", "edit", "-a", "alice", "--releases-limit", "lots"],
     "--releases-limit takes a whole number"),
    (["quarantine-defaults", "set", "--storage-capacity", "-7"], "--storage-capacity must be"),
    (["emails", "list", "-a", "../../etc"], "invalid account name: '../../etc'"),
    (["accounts", "edit", "-a", "a/b", "--state", "block"], "invalid account name: 'a/b'"),
    (["accounts", "remove", "-a", "nobody-here"], "no quarantine for account nobody-here"),
]


def test_bad_input_is_one_line_and_non_zero(quarantine_daemon):
    _d, cli = quarantine_daemon
    for n, (args, error) in enumerate(BAD_INPUT):
        out = cli(*args, check=False, real=n < 3)  # a few through the real console script
        assert out.returncode != 0, args
        lines = out.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ie-cli: error: "), lines
        assert error in lines[0]
        assert b"Traceback" not in out.stderr


# -- the daemon answers 451 when it cannot hold safely ----------------------------------
def _try_send(port: int, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo()
        s.mail(f"alice@{HOSTING}")
        s.rcpt("bob@example.org")
        return s.data(raw)


def test_full_disk_and_read_only_directory_answer_451(quarantine_daemon, tmp_path, sink):
    d, cli = quarantine_daemon
    qdir = tmp_path / "data" / "quarantine"
    with tmpfs(qdir, "32k"):
        code, reply = _try_send(d.outgoing_port, message(size=100 * 1024))
        assert (code, reply[:5]) == (451, b"4.3.0")
    with tmpfs(qdir, "1m", readonly=True):
        code, _ = _try_send(d.outgoing_port, message())
        assert code == 451
    assert cli.json("emails", "list")["max_count"] == 0 and sink.messages == []
    code, _ = _try_send(d.outgoing_port, message(size=100 * 1024))  # disk back: held
    assert code == 250


def test_locked_database_answers_451(quarantine_daemon):
    d, cli = quarantine_daemon
    send(d.outgoing_port, message())
    with database_locked(d.app):
        code, _ = _try_send(d.outgoing_port, message())
        assert code == 451
    assert cli.json("emails", "list")["max_count"] == 1
    assert len(list((Path(d.app.data_dir) / "quarantine").iterdir())) == 1


def test_mail_flows_when_the_cli_socket_cannot_be_served(run_daemon, sink, tmp_path, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    d = run_daemon(**{"quarantine.cli_socket": str(blocker / "cli.sock")})
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
        assert s.sendmail("a@example.com", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n") == {}
    assert len(sink.wait_for(1)) == 1
    assert any("event=cli_socket_failed" in r.getMessage() for r in caplog.records)
