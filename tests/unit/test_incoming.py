"""Incoming filtering without the daemons: policy and marks, subject prefix, the Dovecot
snippet plan, the learn wrapper and spool, daily counts."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from ie_cli.config_main import ie_config
from ie_core import Action, App, Direction, Finding, MessageContext, Stage, hookimpl, rawheaders
from ie_core.processor import analyse, delivery_parts
from ie_plugins.incoming import dovecot, spool, stats
from ie_plugins.incoming.policy import ENABLED

RAW = b"From: a@outside.test\r\nSubject: hello there\r\nX-Spam: Yes\r\n\r\nSPAMMY body\r\n"


class Junker:
    learned: list[tuple[bool, bytes]]

    def __init__(self, fail: bool = False) -> None:
        self.learned = []
        self.fail = fail

    @hookimpl
    def ie_stages(self, app: App) -> list[Stage]:
        def check(ctx: MessageContext) -> Finding | None:
            if b"SPAMMY" in ctx.raw:
                return Finding("junker", reason="spam", score=9, action=Action.JUNK)
            return None
        return [Stage("junker", check, frozenset({Direction.INCOMING}), 400)]

    @hookimpl
    def ie_learn(self, app: App, raw: bytes, spam: bool) -> None:
        if self.fail:
            raise RuntimeError("classifier down")
        self.learned.append((spam, raw))


def _deliver(app: App, *rcpts: str, raw: bytes = RAW) -> tuple[MessageContext, bytes]:
    ctx = MessageContext(Direction.INCOMING, raw, "a@outside.test", list(rcpts),
                         app.clock.now())
    verdict = analyse(app, ctx)
    head, body = delivery_parts(ctx, verdict)
    return ctx, head + body


def _junk_marks(out: bytes) -> list[str]:
    head = out.split(b"\r\n\r\n", 1)[0].decode()
    return [line.split(":", 1)[1].strip() for line in head.split("\r\n")
            if line.lower().startswith("x-ie-junk:")]


@pytest.fixture
def app(make_app: Callable[..., App], db_url: str) -> App:
    application = make_app(db_url=db_url, plugins=[("junker", Junker())])
    from ie_core.db.models import Account, DomainMap

    with application.db.session() as s:
        s.add_all([Account(name="acme", created_at=application.clock.now()),
                   Account(name="beta", created_at=application.clock.now())])
        s.flush()
        s.add_all([DomainMap(domain="example.test", account="acme"),
                   DomainMap(domain="other.test", account="beta")])
    return application


def test_off_passes_through_unjudged_without_marks(app: App) -> None:
    ctx, out = _deliver(app, "alice@example.test")
    assert [f.stage for f in ctx.findings] == ["incoming"]  # classifier never ran
    assert _junk_marks(out) == []
    assert b"X-Spam: Yes" not in out  # the forged header is gone


def test_a_junk_copy_carries_the_spam_header_sieve_rules_know(make_app, db_url) -> None:
    """X-Spam: Yes by default (existing Sieve rules look for it), another name and value
    or none by configuration; a copy from outside is never kept (issue 16)."""
    forged = RAW.replace(b"X-Spam: Yes", b"X-Spam: Yes\r\nX-Junk-Flag: YES")
    for configured, watched, expected in (
            ("X-Spam: Yes", b"x-spam", [b"X-Spam: Yes"]),
            ("X-Junk-Flag: YES", b"x-junk-flag", [b"X-Junk-Flag: YES"]),
            ("", b"x-spam", [])):
        app = make_app(db_url=db_url, plugins=[("junker", Junker())],
                       **{"incoming.spam_header": configured})
        app.settings.set(ENABLED.name, True)
        for raw, wanted in ((forged, expected), (forged.replace(b"SPAMMY", b"nice"), [])):
            _, out = _deliver(app, "alice@example.test", raw=raw)
            head = out.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            assert [h for h in head if h.lower().startswith(watched)] == wanted, configured


def test_marks_all_or_per_recipient_and_counts(app: App) -> None:
    app.settings.set(ENABLED.name, True)
    ctx, out = _deliver(app, "alice@example.test", "bob@example.test")
    assert _junk_marks(out) == ["all"]
    stats.record(app, ctx.data["incoming"], app.clock.now().date())

    from ie_plugins.incoming.models import IncomingAccount

    with app.db.session() as s:
        s.add(IncomingAccount(account="beta", enabled=False, updated_at=app.clock.now()))
    ctx, out = _deliver(app, "Alice@Example.test", "carol@other.test")
    assert _junk_marks(out) == []  # only the filtered recipient's own copy is marked
    assert [(g.rcpt_tos, g.headers) for g in ctx.delivery_groups()] == [
        (["Alice@Example.test"], [("X-IE-Junk", "all"), ("X-Spam", "Yes")]),
        (["carol@other.test"], [])]
    stats.record(app, ctx.data["incoming"], app.clock.now().date())
    ctx, out = _deliver(app, "carol@other.test")
    assert _junk_marks(out) == [] and ctx.findings[0].final
    ctx, out = _deliver(app, "alice@example.test", raw=RAW.replace(b"SPAMMY", b"nice"))
    assert _junk_marks(out) == []
    stats.record(app, ctx.data["incoming"], app.clock.now().date())

    rows = {r["account"]: r for r in stats.daily(app, 1)}
    assert (rows["acme"]["spam"], rows["acme"]["legitimate"]) == (2, 1)
    assert (rows["beta"]["spam"], rows["beta"]["unfiltered"]) == (0, 1)
    assert stats.daily(app, 1, "nobody") == []


def test_subject_prefix_keeps_the_rest_byte_for_byte() -> None:
    raw = b"Subject:  Re: =?utf-8?q?caf=C3=A9?=\n\tfolded\nX-A: b\n\nbody\n"
    out = rawheaders.prefix_value(raw, "Subject", "[SPAM]")
    assert out == b"Subject:  [SPAM] Re: =?utf-8?q?caf=C3=A9?=\n\tfolded\nX-A: b\n\nbody\n"
    no_subject = rawheaders.prefix_value(b"X-A: b\r\n\r\nSubject: no\r\n", "Subject", "[S]")
    assert no_subject.startswith(b"Subject: [S]\r\n")
    assert b"=?utf-8?" in rawheaders.prefix_value(b"Subject: x\n\n", "Subject", "[Späm]")


def _layout(tmp_path: Path, modules: Path | None = None) -> dovecot.Layout:
    return dovecot.Layout(config=tmp_path / "dovecot.conf", conf_d=tmp_path / "conf.d",
                          modules=modules or Path("/usr/lib/dovecot/modules"),
                          sieve_dir=tmp_path / "sieve", spool=tmp_path / "spool",
                          data_dir=tmp_path / "data",
                          mail_user="mail", junk="Junk", trash="Trash", max_bytes=100,
                          max_queued=2)


def test_snippet_keeps_the_admins_sieve_settings(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    used = {"sieve_before": "/etc/admin.sieve", "sieve_plugins": "sieve_extdata",
            "sieve_global_extensions": "+vnd.dovecot.environment",
            "imapsieve_mailbox1_name": "Sent", "imapsieve_mailbox1_before": "file:/x.sieve",
            "sieve_pipe_bin_dir": "/usr/lib/admin-pipes"}
    snippet = dovecot.render_all(layout, used)[layout.snippet][0]
    assert "sieve_before2 = " in snippet and "sieve_before =" not in snippet
    assert "sieve_plugins = sieve_extdata sieve_imapsieve sieve_extprograms" in snippet
    assert ("sieve_global_extensions = +vnd.dovecot.environment +vnd.dovecot.pipe"
            in snippet)
    assert "imapsieve_mailbox2_name = Junk" in snippet
    assert "imapsieve_mailbox3_from = Junk" in snippet
    assert Path("/usr/lib/admin-pipes/ie-learn") in dovecot.render_all(layout, used)
    # rendering again over its own output gives the same file
    ours = {**used, "sieve_before2": f"{layout.sieve_dir}/spam-to-junk.sieve",
            "sieve_plugins": "sieve_extdata sieve_imapsieve sieve_extprograms",
            "imapsieve_mailbox2_name": "Junk",
            "imapsieve_mailbox2_before": f"file:{layout.sieve_dir}/report-spam.sieve",
            "imapsieve_mailbox3_name": "*",
            "imapsieve_mailbox3_before": f"file:{layout.sieve_dir}/report-ham.sieve"}
    assert dovecot.render_all(layout, ours)[layout.snippet][0].replace(
        "+vnd.dovecot.environment +vnd.dovecot.pipe", "") == snippet.replace(
        "+vnd.dovecot.environment +vnd.dovecot.pipe", "")


def test_enable_refuses_without_pigeonhole(tmp_path: Path) -> None:
    (tmp_path / "modules").mkdir()
    (tmp_path / "dovecot.conf").write_text("")
    (tmp_path / "ie.toml").write_text(
        f'[ie]\ndata_dir = "{tmp_path / "data"}"\n[incoming]\n'
        f'dovecot_modules = "{tmp_path / "modules"}"\n'
        f'dovecot_config = "{tmp_path / "dovecot.conf"}"\n'
        f'dovecot_conf_d = "{tmp_path / "conf.d"}"\n')
    result = CliRunner().invoke(ie_config, ["--config", str(tmp_path / "ie.toml"),
                                            "enable-incoming"])
    assert result.exit_code != 0
    assert "sieve_extprograms plugin" in result.output and "Pigeonhole" in result.output
    assert not (tmp_path / "conf.d").exists()


def _fake_dovecot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mail_user: str = "mail",
                  tools: tuple[str, ...] = ("doveconf", "sievec", "doveadm")) -> Path:
    """A Dovecot that passes every requirement check: module files, ``tools`` on PATH (they
    succeed; sievec copies the script), dovecot.conf, conf.d.  Returns ie's config file."""
    for name in dovecot.REQUIRED_MODULES:
        (tmp_path / "modules" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "modules" / name).touch()
    (tmp_path / "dovecot.conf").write_text("")
    (tmp_path / "conf.d").mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in tools:
        (bindir / tool).write_text(f'#!/bin/sh\n[ -n "$4" ] && {shutil.which("cp")} "$3" "$4"\n'
                                   "exit 0\n")
        (bindir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    config = tmp_path / "ie.toml"
    config.write_text(
        f'[ie]\ndata_dir = "{tmp_path / "data"}"\n[incoming]\n'
        f'dovecot_modules = "{tmp_path / "modules"}"\n'
        f'dovecot_config = "{tmp_path / "dovecot.conf"}"\n'
        f'dovecot_conf_d = "{tmp_path / "conf.d"}"\n'
        f'sieve_dir = "{tmp_path / "sieve"}"\nlearn_spool = "{tmp_path / "spool"}"\n'
        f'mail_user = "{mail_user}"\n')
    return config


def _enable_incoming(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(ie_config, ["--config", str(config), "enable-incoming", *args])
    return result.exit_code, result.output


def test_enable_refuses_an_unknown_mail_user_before_writing_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _fake_dovecot(tmp_path, monkeypatch, mail_user="no-such-user-ie")
    code, output = _enable_incoming(config)
    assert code != 0
    assert output.strip().count("\n") == 0
    assert "mail user 'no-such-user-ie' does not exist" in output
    assert "internal error" not in output
    assert list((tmp_path / "conf.d").iterdir()) == []
    assert not (tmp_path / "sieve").exists() and not (tmp_path / "spool").exists()


def test_enable_refuses_a_conf_d_that_does_not_exist(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _fake_dovecot(tmp_path, monkeypatch)
    code, output = _enable_incoming(config, "--conf-d", str(tmp_path / "conf.dd"))
    assert code != 0
    assert f"conf.d directory {tmp_path / 'conf.dd'} does not exist" in output
    assert not (tmp_path / "conf.dd").exists() and not (tmp_path / "sieve").exists()


def test_a_missing_or_hanging_dovecot_tool_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sleep = shutil.which("sleep")
    _fake_dovecot(tmp_path, monkeypatch, tools=("doveconf", "sievec"))  # no doveadm
    layout = _layout(tmp_path)
    assert dovecot.reload(layout) == (False, "Dovecot not reloaded (not running?): "
                                             "doveadm: not found")
    (tmp_path / "bin" / "doveadm").write_text(f"#!/bin/sh\nexec {sleep} 10\n")
    (tmp_path / "bin" / "doveadm").chmod(0o755)
    monkeypatch.setattr(dovecot, "TOOL_TIMEOUT", 0.3)
    assert dovecot.reload(layout)[1].endswith("doveadm: no answer after 0.3 seconds")
    (tmp_path / "bin" / "doveconf").unlink()
    code, output = _enable_incoming(tmp_path / "ie.toml")
    assert code != 0 and "internal error" not in output
    assert "doveconf is not on PATH" in output


def _wrapper(tmp_path: Path) -> Path:
    layout = _layout(tmp_path)
    for sub in ("tmp", "new", "cur"):
        (layout.spool / sub).mkdir(parents=True, exist_ok=True)
    files = dovecot.render_all(layout, {})
    path = layout.sieve_dir / "bin" / dovecot.PIPE_PROGRAM
    path.parent.mkdir(parents=True)
    path.write_text(files[path][0])
    return path


def _pipe(wrapper: Path, label: str, data: bytes) -> int:
    return subprocess.run(["sh", str(wrapper), label, "alice@example.test"], input=data,
                          capture_output=True, timeout=10, check=False).returncode


def test_learn_wrapper_queues_within_limits(tmp_path: Path) -> None:
    wrapper = _wrapper(tmp_path)
    new = tmp_path / "spool" / "new"
    assert _pipe(wrapper, "spam", b"x" * 100) == 0
    assert _pipe(wrapper, "ham", b"x" * 101) == 0  # too big: dropped
    assert _pipe(wrapper, "bogus", b"x") != 0
    assert [n.split(".")[0] for n in os.listdir(new)] == ["spam"]
    assert (new / os.listdir(new)[0]).read_bytes() == b"x" * 100
    assert _pipe(wrapper, "ham", b"y") == 0
    assert _pipe(wrapper, "ham", b"z") == 0  # spool full (2 queued): dropped
    assert len(os.listdir(new)) == 2 and os.listdir(tmp_path / "spool" / "tmp") == []


def test_spool_drain_learns_and_retries(make_app: Callable[..., App], tmp_path: Path) -> None:
    wrapper = _wrapper(tmp_path)
    _pipe(wrapper, "spam", b"Subject: s\n\nspam body")
    _pipe(wrapper, "ham", b"Subject: h\n\nham body")
    (tmp_path / "spool" / "new" / "junk.1.2.3").write_bytes(b"not a report")
    failing = Junker(fail=True)
    app = make_app(plugins=[("junker", failing)])
    result = spool.drain(app, tmp_path / "spool", 100)
    assert (result.learned, result.failed, result.skipped) == (0, 1, 1)  # oldest first
    assert len(os.listdir(tmp_path / "spool" / "new")) == 2
    failing.fail = False
    result = spool.drain(app, tmp_path / "spool", 100)
    assert (result.learned, result.failed) == (2, 0)
    assert sorted(failing.learned) == [(False, b"Subject: h\n\nham body"),
                                       (True, b"Subject: s\n\nspam body")]
    assert os.listdir(tmp_path / "spool" / "new") == os.listdir(tmp_path / "spool" / "cur") == []


def test_migration_downgrades(make_app: Callable[..., App], db_url: str) -> None:
    from sqlalchemy import inspect

    from ie_core.db import migrate

    app = make_app(db_url=db_url)
    migrate.downgrade(app.db, "incoming@0001_core")
    assert "incoming_daily" not in inspect(app.db.engine).get_table_names()
    migrate.upgrade(app.db)
    assert "incoming_daily" in inspect(app.db.engine).get_table_names()
