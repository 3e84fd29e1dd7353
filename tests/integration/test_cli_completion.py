"""``ie-cli completion bash|zsh|fish`` prints a script that completes ie-cli's commands,
the plugins' included (issue 16; Imunify Email's ie-cli has the same command)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.fixtures.paths import IE_CLI


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(IE_CLI), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o nosort -F"),
                                          ("zsh", "compdef"), ("fish", "complete --no-files")])
def test_each_shell_gets_its_script(shell, marker):
    out = run("completion", shell)
    assert out.returncode == 0, out.stderr
    assert marker in out.stdout and "_IE_CLI_COMPLETE" in out.stdout


def test_the_bash_script_is_valid_and_completes_plugin_commands(tmp_path):
    script = tmp_path / "ie-cli.bash"
    script.write_text(run("completion", "bash").stdout)
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0
    words = {"COMP_WORDS": "ie-cli emails l", "COMP_CWORD": "2",
             "_IE_CLI_COMPLETE": "bash_complete"}
    assert run(env=words).stdout.split() == ["plain,list"]
    words = {"COMP_WORDS": "ie-cli whitelist sender d", "COMP_CWORD": "3",
             "_IE_CLI_COMPLETE": "bash_complete"}
    assert run(env=words).stdout.split() == ["plain,delete"]


def test_an_unknown_shell_is_one_clear_error():
    out = run("completion", "tcsh")
    assert out.returncode != 0 and "tcsh" in out.stderr and "Traceback" not in out.stderr
