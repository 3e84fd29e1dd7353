"""``version`` is one command object in both command lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ie_cli.config_main import ie_config
from ie_cli.main import ie_cli
from ie_core import __version__


def test_both_command_lines_share_one_version_command():
    assert ie_cli.commands["version"] is ie_config.commands["version"]
    for group in (ie_cli, ie_config):
        result = CliRunner().invoke(group, ["version", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"version": __version__}


HEAVY = ("sqlalchemy", "alembic", "pluggy", "starlette", "jinja2", "email.parser",
         "ie_plugins", "ie_core.app", "ie_core.db")


def imported_by(*args: str) -> set[str]:
    """The modules a real ``ie-cli`` (the script next to this interpreter) imports."""
    script = Path(sys.executable).with_name("ie-cli")
    done = subprocess.run([sys.executable, "-X", "importtime", str(script), *args],
                          capture_output=True, text=True, timeout=60, check=True)
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_version_starts_without_the_database_plugins_or_web_stack():
    loaded = imported_by("version")
    assert "click" in loaded  # the measurement works
    assert not {n for n in loaded if n.split(".")[0] in HEAVY or n in HEAVY}


def test_help_still_lists_every_command_core_and_plugins(tmp_path):
    script = Path(sys.executable).with_name("ie-cli")
    done = subprocess.run([str(script), "--data-dir", str(tmp_path), "--help"],
                          capture_output=True, text=True, timeout=60, check=True)
    for name in ("check", "completion", "version", "emails", "am", "whitelist",
                 "filter-settings"):
        assert f"\n  {name} " in done.stdout, name
