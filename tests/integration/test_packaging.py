"""Installed for real: a third-party plugin from its own distribution, and ie's wheel in a
fresh virtual environment outside the source tree."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.daemon import BIN, write_config

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "sample_plugin"
MARKED = b"From: a@example.com\r\nSubject: x\r\n\r\nSAMPLE-PLUGIN-MARKER\r\n"


def run(args: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def sample_site(tmp_path_factory) -> Path:
    """The sample distribution installed with pip into a directory of its own."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "sample_plugin"
    shutil.copytree(SAMPLE, source)  # pip builds in place: keep the tree clean
    out = run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
               "--no-build-isolation", "--target", str(target), str(source)])
    assert out.returncode == 0, out.stderr
    assert list(target.glob("ie_sample_plugin-*.dist-info/entry_points.txt"))
    return target


def test_third_party_plugin_adds_a_stage_and_a_command_and_can_be_disabled(
        sample_site, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(sample_site)}
    msg = tmp_path / "m.eml"
    msg.write_bytes(MARKED)
    cfg = write_config(tmp_path / "ie.toml", {"ie.data_dir": str(tmp_path / "d")})
    cli = [str(BIN / "ie-cli"), "--config", str(cfg)]
    assert run([str(BIN / "ie-config"), "--config", str(cfg), "db", "upgrade"],
               env=env).returncode == 0

    out = run(cli + ["sample-hello"], env=env)
    assert out.returncode == 0 and out.stdout.strip() == "hello from the sample plugin"
    out = run(cli + ["check", "--json", str(msg)], env=env)
    result = json.loads(out.stdout)
    assert result["action"] == "reject"
    assert [f["detail"] for f in result["findings"] if f["stage"] == "sample"] == ["sample marker"]

    cfg.write_text(cfg.read_text() + '[plugins]\ndisabled = ["sample"]\n')
    out = run(cli + ["check", "--json", str(msg)], env=env)
    assert json.loads(out.stdout)["action"] == "deliver"
    out = run(cli + ["sample-hello"], env=env)
    assert out.returncode != 0 and "No such command" in out.stderr


def test_third_party_plugin_ships_its_table_through_its_own_migration(sample_site, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(sample_site)}
    cfg = write_config(tmp_path / "ie.toml", {"ie.data_dir": str(tmp_path / "d")})
    config = [str(BIN / "ie-config"), "--config", str(cfg)]
    out = run(config + ["db", "upgrade"], env=env)
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(tmp_path / "d" / "ie.db") as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        versions = {r[0] for r in con.execute("SELECT version_num FROM alembic_version")}
    assert "sample_notes" in tables and "sample_0001" in versions
    out = run(config + ["db", "check"], env=env)
    assert out.returncode == 0 and "sample_0001" in out.stdout

    cfg.write_text(cfg.read_text() + '[plugins]\ndisabled = ["sample"]\n')
    assert run(config + ["db", "check"], env=env).returncode == 0  # its history stays known

    gone = {k: v for k, v in env.items() if k != "PYTHONPATH"}  # the plugin uninstalled
    out = run(config + ["db", "check"], env=gone)
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1 and "sample_0001" in out.stderr


def test_wheel_in_a_fresh_venv_outside_the_tree(tmp_path):
    dist = tmp_path / "dist"
    out = run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
               "--no-build-isolation", "-w", str(dist), str(ROOT)])
    assert out.returncode == 0, out.stderr
    [wheel] = dist.glob("ie_mailfilter-*.whl")
    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    out = run(pip + [str(wheel)], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cfg = write_config(tmp_path / "ie.toml", {"ie.data_dir": str(tmp_path / "data")})
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "IE_CONFIG")}
    bindir = venv / "bin"
    for cmd in (["ie-config", "--config", str(cfg), "db", "upgrade"],
                ["ie-config", "--config", str(cfg), "db", "check"],
                ["ie-cli", "--config", str(cfg), "version"],
                ["ie-filterd", "--help"]):
        out = run([str(bindir / cmd[0]), *cmd[1:]], cwd=tmp_path, env=env)
        assert out.returncode == 0, (cmd, out.stderr)
    # nothing generic was installed at the top of site-packages; data files shipped
    probe = ("import importlib.resources as r, importlib.util as u;"
             "print(all(u.find_spec(n) is None for n in ('plugins','cli','migrations')));"
             "print(r.files('ie_migrations').joinpath('env.py').is_file());"
             "print(any(p.name.endswith('.py') for p in "
             "r.files('ie_migrations').joinpath('versions').iterdir()));"
             "print(r.files('ie_plugins.quarantine.migrations')"
             ".joinpath('0002_quarantine.py').is_file())")
    out = run([str(bindir / "python"), "-c", probe], cwd=tmp_path, env=env)
    assert out.stdout.split() == ["True", "True", "True", "True"], out.stderr
