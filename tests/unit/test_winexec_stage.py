"""The winexec stage: actions per direction, run-time settings read per message (on SQLite
and PostgreSQL), configuration checks, and the settings in ``ie-cli filter-settings``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ie_cli.main import ie_cli
from ie_core import Action, ConfigError, Direction, MessageContext
from tests.fixtures import winexec_messages as m

EXE_MAIL = m.mail(("invoice.pdf", m.pe_file(), "application/pdf"))
ENCRYPTED_MAIL = m.mail(("secret.zip", m.encrypted_zip(["readme.txt"]), "application/zip"))


def run_stage(app, raw: bytes, direction: Direction = Direction.OUTGOING):
    [stage] = [s for s in app.stages(direction) if s.name == "winexec"]
    ctx = MessageContext(direction=direction, raw=raw, mail_from="alice@example.com",
                         rcpt_tos=["bob@example.org"], received_at=app.clock.now())
    return stage.run(ctx)


def test_outgoing_executable_is_quarantined(make_app, db_url):
    app = make_app(db_url=db_url)
    finding = run_stage(app, EXE_MAIL)
    assert (finding.stage, finding.reason, finding.action) == ("winexec", "winexec",
                                                               Action.QUARANTINE)
    assert finding.detail == "invoice.pdf: Windows executable (PE)"
    assert run_stage(app, m.mail(("notes.txt", m.TEXT_FILE, "application/octet-stream"))) \
        is None


def test_incoming_executable_is_rejected_by_default_and_configurable(make_app):
    finding = run_stage(make_app(), EXE_MAIL, Direction.INCOMING)
    assert (finding.reason, finding.action) == ("winexec", Action.REJECT)
    app = make_app(**{"winexec.incoming_action": "junk"})
    assert run_stage(app, EXE_MAIL, Direction.INCOMING).action is Action.JUNK


def test_allow_settings_apply_per_direction_without_restart(make_app, db_url):
    app = make_app(db_url=db_url)
    assert run_stage(app, EXE_MAIL).reason == "winexec"
    app.settings.set("winexec.allow_outgoing", True)
    assert run_stage(app, EXE_MAIL) is None
    assert run_stage(app, EXE_MAIL, Direction.INCOMING).reason == "winexec"
    app.settings.set("winexec.allow_incoming", True)
    assert run_stage(app, EXE_MAIL, Direction.INCOMING) is None
    app.settings.set("winexec.allow_outgoing", None)  # back to the default
    assert run_stage(app, EXE_MAIL).reason == "winexec"


def test_unopenable_archives_allowed_or_held(make_app, db_url):
    app = make_app(db_url=db_url)
    finding = run_stage(app, ENCRYPTED_MAIL)
    assert (finding.reason, finding.action) == (None, Action.DELIVER)
    assert finding.detail == "secret.zip > readme.txt: not inspected, encrypted"
    app.settings.set("winexec.unopenable_archives", "hold")
    finding = run_stage(app, ENCRYPTED_MAIL)
    assert (finding.reason, finding.action) == ("winexec", Action.QUARANTINE)
    assert run_stage(app, ENCRYPTED_MAIL, Direction.INCOMING).action is Action.REJECT


def test_bounds_come_from_the_configuration(make_app):
    app = make_app(**{"winexec.max_depth": 2})
    raw = m.mail(("d.zip", m.nested_zip(3), "application/zip"))
    assert "nested deeper than 2" in run_stage(app, raw).detail
    assert run_stage(make_app(), raw).reason == "winexec"


def test_extension_list_is_configurable(make_app):
    raw = m.mail(("macro.docm", b"data", "application/octet-stream"))
    assert run_stage(make_app(), raw) is None
    app = make_app(**{"winexec.extensions": ["EXE", "docm"]})
    assert run_stage(app, raw).detail == "macro.docm: file name ending in .docm"
    assert run_stage(app, m.mail(("x.js", b"data", "text/plain"))) is None


@pytest.mark.parametrize("key,value,message", [
    ("winexec.max_depth", 0, "winexec.max_depth must be between 1 and 64"),
    ("winexec.max_entries", -1, "winexec.max_entries must be positive"),
    ("winexec.incoming_action", "drop", "winexec.incoming_action must be one of"),
    ("winexec.extensions", [".exe", 3], "winexec.extensions must be a list of strings"),
])
def test_bad_configuration_is_refused(make_app, key, value, message):
    app = make_app(**{key: value})
    with pytest.raises(ConfigError, match=message):
        app.stages(Direction.OUTGOING)


def _config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "cli.toml"
    path.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n')
    return path


def test_filter_settings_lists_and_changes_winexec_settings(make_app, db_url, tmp_path):
    app = make_app(db_url=db_url)
    config = _config(tmp_path, db_url)
    runner = CliRunner()
    result = runner.invoke(ie_cli, ["--config", str(config), "filter-settings", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert {k: v for k, v in shown.items() if k.startswith("winexec.")} == {
        "winexec.allow_incoming": False, "winexec.allow_outgoing": False,
        "winexec.unopenable_archives": "allow", "winexec.scan_limits": "hold"}
    result = runner.invoke(ie_cli, ["--config", str(config), "filter-settings",
                                    "--winexec-allow-outgoing", "yes",
                                    "--winexec-unopenable-archives", "hold", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["winexec.unopenable_archives"] == "hold"
    app.settings.invalidate()
    assert run_stage(app, EXE_MAIL) is None
    assert run_stage(app, ENCRYPTED_MAIL, Direction.INCOMING).reason == "winexec"


def test_filter_settings_refuses_a_bad_choice_in_one_line(make_app, tmp_path):
    app = make_app()
    config = _config(tmp_path, app.config.database_url)
    result = CliRunner().invoke(ie_cli, ["--config", str(config), "filter-settings",
                                         "--winexec-unopenable-archives", "maybe"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "ie-cli: error: --winexec-unopenable-archives takes one of allow, hold, not 'maybe'"]
