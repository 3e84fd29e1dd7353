"""The command lines' error contract: one line on stderr and a non-zero exit, for database
errors, for log records written while a command runs (no traceback unless ``IE_DEBUG=1``)
and for ``ie-cli check`` when a message could not be checked."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ie_cli import base
from ie_cli.main import ie_cli
from ie_core import Stage, hookimpl

BIN = Path(sys.executable).parent
MSG = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: t\r\n\r\nbody\r\n"


def _config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "cli.toml"
    path.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n')
    return path


def _message(tmp_path: Path) -> Path:
    path = tmp_path / "m.eml"
    path.write_bytes(MSG)
    return path


class Exploding:
    @hookimpl
    def ie_stages(self, app):
        def boom(ctx):
            raise ValueError("stage bug\nsecond line")
        return [Stage(name="exploding", run=boom)]


@pytest.fixture
def exploding_cli(make_app, monkeypatch):
    """``ie-cli`` whose App has a stage that raises."""
    app = make_app(plugins=[("exploding", Exploding())])
    monkeypatch.setattr(base, "_make_app", lambda config, overrides: app)
    return app


def test_check_on_a_database_never_upgraded_is_one_line_naming_the_upgrade(tmp_path):
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'fresh.db'}")
    out = subprocess.run([str(BIN / "ie-cli"), "--config", str(config), "check",
                          str(_message(tmp_path))], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stdout == ""
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("ie-cli: error: database schema is empty") and \
        "ie-config db upgrade" in line


def test_check_exits_non_zero_when_a_stage_fails_and_logs_one_line(exploding_cli, tmp_path):
    result = CliRunner().invoke(ie_cli, ["check", str(_message(tmp_path))])
    assert result.exit_code == 1
    assert "action=tempfail" in result.stdout
    assert "stage exploding failed: ValueError" in result.stdout
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("ie-cli: error: event=stage_error stage=exploding")
    assert line.endswith("(ValueError: stage bug second line)")


def test_check_json_names_the_error(exploding_cli, tmp_path):
    result = CliRunner().invoke(ie_cli, ["check", "--json", str(_message(tmp_path))])
    assert result.exit_code == 1
    assert '"error": "stage exploding failed: ValueError"' in result.stdout


def test_ie_debug_shows_the_traceback(exploding_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("IE_DEBUG", "1")
    result = CliRunner().invoke(ie_cli, ["check", str(_message(tmp_path))])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert 'raise ValueError("stage bug' in result.stderr


def test_a_clean_message_exits_zero_and_the_log_handler_is_removed(make_app, tmp_path):
    app = make_app()
    handlers = list(logging.getLogger().handlers)
    result = CliRunner().invoke(ie_cli, ["--config", str(_config(tmp_path,
                                                                 app.config.database_url)),
                                         "check", str(_message(tmp_path))])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert logging.getLogger().handlers == handlers


def test_a_malformed_database_url_is_one_line_with_the_message(tmp_path):
    result = CliRunner().invoke(ie_cli, ["--config", str(_config(tmp_path, "foo")), "check",
                                         str(_message(tmp_path))])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "ie-cli: error: database error: Could not parse SQLAlchemy URL from given URL string"]
