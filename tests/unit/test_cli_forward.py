"""What ``ie-cli`` sends to ie-filterd, and what it keeps for itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ie_cli.forward import request_for, split_root_options


@pytest.mark.parametrize(("argv", "expected"), [
    (["emails", "list"], (None, None, ["emails", "list"])),
    (["--config", "/e/ie.toml", "am", "stats"], ("/e/ie.toml", None, ["am", "stats"])),
    (["--config=/e/ie.toml", "--data-dir", "/d", "stats", "incoming", "--json"],
     ("/e/ie.toml", "/d", ["stats", "incoming", "--json"])),
    (["--help"], None),
    (["--config"], None),
    (["--confi", "x", "emails", "list"], None),
])
def test_root_options_are_split_off(argv: list[str], expected: object) -> None:
    assert split_root_options(argv) == expected


def test_the_request_names_the_file_and_data_directory(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IE_DEBUG", raising=False)
    config = tmp_path / "ie.toml"
    config.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\n')
    where, request = request_for(["--config", str(config), "emails", "list"]) or (None, None)
    assert where == tmp_path / "data" / "commands.sock"
    assert request == {"argv": ["emails", "list"], "config": os.path.realpath(config),
                       "data_dir": os.path.realpath(tmp_path / "data")}
    config.write_text(f'[cli_server]\nsocket = "{tmp_path / "s.sock"}"\n')
    assert request_for(["--config", str(config), "--data-dir", str(tmp_path), "am", "stats"]) \
        == (tmp_path / "s.sock", {"argv": ["am", "stats"], "config": os.path.realpath(config),
                                  "data_dir": os.path.realpath(tmp_path)})


@pytest.mark.parametrize("argv", [
    ["version"], ["check", "-"], ["learn", "--spam", "x"], ["emails", "list", "--help"],
    ["emails", "show", "-h"],
])
def test_commands_that_never_go(tmp_path: Path, argv: list[str]) -> None:
    config = tmp_path / "ie.toml"
    config.write_text("")
    assert request_for(["--config", str(config), *argv]) is None


def test_nothing_goes_when_debugging_completing_disabled_or_unreadable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IE_DEBUG", raising=False)
    config = tmp_path / "ie.toml"
    config.write_text('[plugins]\ndisabled = ["cli_server"]\n')
    assert request_for(["--config", str(config), "emails", "list"]) is None
    config.write_text("not toml [")
    assert request_for(["--config", str(config), "emails", "list"]) is None
    assert request_for(["--config", str(tmp_path / "missing.toml"), "emails", "list"]) is None
    config.write_text("")
    assert request_for(["--config", str(config), "emails", "list"]) is not None
    monkeypatch.setenv("_IE_CLI_COMPLETE", "bash_complete")
    assert request_for(["--config", str(config), "emails", "list"]) is None
    monkeypatch.delenv("_IE_CLI_COMPLETE")
    monkeypatch.setenv("IE_DEBUG", "1")
    assert request_for(["--config", str(config), "emails", "list"]) is None
