"""``version`` is one command object in both command lines."""

from __future__ import annotations

import json

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
