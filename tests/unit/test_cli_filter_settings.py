"""``ie-cli filter-settings``: ``default`` or ``-1`` (the Imunify CLI's word) restores any
setting to its default, numbers included (a held-everything threshold of -1 is never what an
admin typing -1 meant)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ie_cli.main import ie_cli


def _config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "cli.toml"
    path.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n')
    return path


def _settings(config: Path, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(ie_cli, ["--config", str(config), "filter-settings",
                                         *args, "--json"])
    assert result.exit_code == 0, result.output
    shown: dict[str, object] = json.loads(result.output)
    return shown


def test_default_and_minus_one_restore_a_number(make_app, db_url, tmp_path):
    make_app(db_url=db_url)
    config = _config(tmp_path, db_url)
    key = "classify.outgoing_threshold"
    for restore in ("default", "-1"):
        assert _settings(config, "--classify-outgoing-threshold", "12")[key] == 12.0
        assert _settings(config, "--classify-outgoing-threshold", restore)[key] == 10.0


def test_default_and_minus_one_restore_yes_no_choice_and_text_settings(make_app, tmp_path):
    app = make_app()
    config = _config(tmp_path, app.config.database_url)
    for restore in ("default", "-1"):
        changed = _settings(config, "--winexec-allow-outgoing", "yes",
                            "--winexec-unopenable-archives", "hold",
                            "--incoming-subject-prefix", "[SPAM]")
        assert (changed["winexec.allow_outgoing"], changed["winexec.unopenable_archives"],
                changed["incoming.subject_prefix"]) == (True, "hold", "[SPAM]")
        restored = _settings(config, "--winexec-allow-outgoing", restore,
                             "--winexec-unopenable-archives", restore,
                             "--incoming-subject-prefix", restore)
        assert (restored["winexec.allow_outgoing"], restored["winexec.unopenable_archives"],
                restored["incoming.subject_prefix"]) == (False, "allow", "")


def test_help_names_both_ways_back(make_app, tmp_path):
    app = make_app()
    config = _config(tmp_path, app.config.database_url)
    result = CliRunner().invoke(ie_cli, ["--config", str(config), "filter-settings", "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    helps = {part.split()[0]: part for part in text.split(" --")[1:]}
    assert helps["classify-outgoing-threshold"].endswith(
        "Default: 10.0; default or -1 restores it.")
    assert helps["winexec-allow-outgoing"].endswith("Default: no; default or -1 restores it.")
