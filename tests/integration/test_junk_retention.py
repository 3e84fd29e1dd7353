"""Junk retention on a real Dovecot: ``doveadm expunge`` removes only what is older than
the account's retention, from Junk only, for every user Dovecot's userdb lists."""

from __future__ import annotations

import imaplib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ie_cli.main import ie_cli
from ie_core import App
from ie_plugins.incoming import retention
from tests.fixtures.dovecot import Dovecot, require_dovecot

pytestmark = pytest.mark.mta

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@other.test"
DAY = 86400


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    require_dovecot()
    server = Dovecot([ALICE, BOB, CAROL]).start()
    try:
        yield server
    finally:
        server.stop()


def append(server: Dovecot, user: str, mailbox: str, subject: str, age_days: float) -> None:
    """APPEND a message whose IMAP internal date is ``age_days`` old."""
    conn = server.imap(user)
    try:
        when = imaplib.Time2Internaldate(time.time() - age_days * DAY)
        raw = f"From: x@outside.test\r\nSubject: {subject}\r\n\r\nspam\r\n".encode()
        typ, _ = conn.append(mailbox, "", when, raw)
        assert typ == "OK"
    finally:
        conn.logout()


def cli(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(ie_cli, ["--config", str(config), *args])
    return result.exit_code, result.output


@pytest.fixture
def setup(make_app: Callable[..., App], dovecot: Dovecot, tmp_path: Path,
          db_url: str) -> tuple[App, Path]:
    config = tmp_path / "ie.toml"
    config.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n'
                      f'[incoming]\ndovecot_config = "{dovecot.config}"\n'
                      'junk_retention_by = "received"\n')
    app = make_app(config=config, db_url=db_url)
    for args in (("domains", "set", "example.test", "acme"),
                 ("domains", "set", "other.test", "beta"),
                 ("filter-settings", "--incoming-junk-retention-days", "10"),
                 ("accounts", "edit", "-a", "beta", "--junk-retention", "30")):
        code, out = cli(config, *args)
        assert code == 0, out
    for user in (ALICE, BOB, CAROL):
        append(dovecot, user, "Junk", "old spam", 20)
        append(dovecot, user, "Junk", "new spam", 2)
        append(dovecot, user, "INBOX", "old ham", 40)
    append(dovecot, CAROL, "Junk", "ancient spam", 45)
    return app, config


def test_only_older_junk_is_expunged_per_account(setup: tuple[App, Path],
                                                 dovecot: Dovecot) -> None:
    app, config = setup
    code, out = cli(config, "incoming", "expunge-junk", "--dry-run", "--json")
    assert code == 0, out
    seen = {i["user"]: (i["account"], i["days"], i["messages"])
            for i in json.loads(out)["items"]}
    assert seen == {ALICE: ("acme", 10, 1), BOB: ("acme", 10, 1), CAROL: ("beta", 30, 1)}
    assert sorted(dovecot.subjects(ALICE, "Junk")) == ["new spam", "old spam"]  # dry run

    code, out = cli(config, "incoming", "expunge-junk", "--account", "acme")
    assert code == 0, out
    assert "expunged 2 message(s)" in out
    for user in (ALICE, BOB):
        assert dovecot.subjects(user, "Junk") == ["new spam"]
        assert dovecot.subjects(user, "INBOX") == ["old ham"]
    assert sorted(dovecot.subjects(CAROL, "Junk")) == ["ancient spam", "new spam", "old spam"]

    report = retention.expunge_junk(app)  # what the daily service runs
    assert report.expunged == 1 and report.failed == []
    assert sorted(dovecot.subjects(CAROL, "Junk")) == ["new spam", "old spam"]


def test_saved_date_counts_by_default_and_zero_keeps(make_app: Callable[..., Any],
                                                    dovecot: Dovecot, db_url: str) -> None:
    """By save date (the default) mail appended just now is young whatever its internal
    date; a retention of 0 days keeps everything."""
    app = make_app(db_url=db_url, **{"incoming.dovecot_config": str(dovecot.config)})
    append(dovecot, ALICE, "Junk", "received long ago", 20)
    app.settings.set("incoming.junk_retention_days", 10)
    assert retention.expunge_junk(app).expunged == 0
    app.settings.set("incoming.junk_retention_days", 1)
    app.settings.set("incoming.junk_retention:root", 0)
    assert retention.expunge_junk(app).users == []
    assert dovecot.subjects(ALICE, "Junk") == ["received long ago"]


def test_a_dovecot_that_is_not_running_is_one_line(make_app, tmp_path: Path) -> None:
    require_dovecot()
    conf = tmp_path / "dovecot.conf"  # userdb through an auth socket nobody serves
    conf.write_text(f"base_dir = {tmp_path}/run\nuserdb {{\n  driver = passwd\n}}\n")
    config = tmp_path / "ie.toml"
    config.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\n'
                      f'[incoming]\ndovecot_config = "{conf}"\n')
    make_app(config=config)
    code, out = cli(config, "incoming", "expunge-junk", "--dry-run")
    assert code == 1
    [line] = [x for x in out.splitlines() if x.startswith("ie-cli: error:")]
    assert "doveadm user failed:" in line and "backtrace" not in line.lower()
