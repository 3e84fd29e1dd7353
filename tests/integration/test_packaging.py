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

from ie_core.db import Database, migrate
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


def _sqlite(path: Path) -> tuple[set[str], set[str]]:
    """(tables, version rows) of an ie SQLite database."""
    with sqlite3.connect(path) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        versions = {r[0] for r in con.execute("SELECT version_num FROM alembic_version")}
    return tables, versions


def _database_item(config: list[str], env: dict[str, str]) -> dict[str, object]:
    out = run(config + ["status", "--json"], env=env)
    [item] = [i for i in json.loads(out.stdout)["items"] if i["name"] == "database"]
    return item


def test_third_party_plugin_ships_its_table_through_its_own_migration(sample_site, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(sample_site)}
    cfg = write_config(tmp_path / "ie.toml", {"ie.data_dir": str(tmp_path / "d")})
    config = [str(BIN / "ie-config"), "--config", str(cfg)]
    assert not _database_item(config, env)["ok"]
    out = run(config + ["db", "upgrade"], env=env)
    assert out.returncode == 0, out.stderr
    tables, versions = _sqlite(tmp_path / "d" / "ie.db")
    assert "sample_notes" in tables and "sample_0001" in versions
    out = run(config + ["db", "check"], env=env)
    assert out.returncode == 0 and "sample_0001" in out.stdout
    assert _database_item(config, env)["ok"]
    cli = [str(BIN / "ie-cli"), "--config", str(cfg)]
    assert [run(cli + ["sample-note", n], env=env).stdout for n in ("a", "b")] == ["1\n", "2\n"]

    cfg.write_text(cfg.read_text() + '[plugins]\ndisabled = ["sample"]\n')
    assert run(config + ["db", "check"], env=env).returncode == 0  # its history stays known
    assert run(config + ["db", "upgrade"], env=env).returncode == 0

    gone = {k: v for k, v in env.items() if k != "PYTHONPATH"}  # the plugin uninstalled
    out = run(config + ["db", "check"], env=gone)
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1 and "sample_0001" in out.stderr


def test_a_disabled_third_party_plugin_gets_no_table_until_enabled(sample_site, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(sample_site)}
    cfg = write_config(tmp_path / "ie.toml", {"ie.data_dir": str(tmp_path / "d"),
                                             "plugins.disabled": ["sample"]})
    config = [str(BIN / "ie-config"), "--config", str(cfg)]
    assert run(config + ["db", "upgrade"], env=env).returncode == 0
    tables, versions = _sqlite(tmp_path / "d" / "ie.db")
    assert "sample_notes" not in tables and "sample_0001" not in versions
    assert "quarantine_messages" in tables  # the enabled plugins' tables are there
    assert run(config + ["db", "check"], env=env).returncode == 0
    assert _database_item(config, env)["ok"]

    cfg.write_text(cfg.read_text().replace('disabled = ["sample"]', "disabled = []"))
    out = run(config + ["db", "check"], env=env)
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1 and "sample_0001" in out.stderr
    item = _database_item(config, env)  # ie-config status wants its head too
    assert not item["ok"] and "behind (sample_0001 not applied)" in str(item["detail"])
    assert run(config + ["db", "upgrade"], env=env).returncode == 0
    assert "sample_notes" in _sqlite(tmp_path / "d" / "ie.db")[0]
    assert run(config + ["db", "check"], env=env).returncode == 0


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
                ["ie-filterd", "--help"], ["ie-web", "--help"]):
        out = run([str(bindir / cmd[0]), *cmd[1:]], cwd=tmp_path, env=env)
        assert out.returncode == 0, (cmd, out.stderr)
    # nothing generic was installed at the top of site-packages; data files shipped
    probe = ("import importlib.resources as r, importlib.util as u;"
             "print(all(u.find_spec(n) is None for n in ('plugins','cli','migrations')));"
             "print(r.files('ie_migrations').joinpath('env.py').is_file());"
             "print(any(p.name.endswith('.py') for p in "
             "r.files('ie_migrations').joinpath('versions').iterdir()));"
             "print(r.files('ie_plugins.quarantine.migrations')"
             ".joinpath('0002_quarantine.py').is_file());"
             "print(r.files('ie_plugins.web.templates').joinpath('base.html.j2').is_file()"
             " and r.files('ie_plugins.web.static').joinpath('ie.css').is_file())")
    out = run([str(bindir / "python"), "-c", probe], cwd=tmp_path, env=env)
    assert out.stdout.split() == ["True", "True", "True", "True", "True"], out.stderr
    # every built-in plugin's revisions were shipped next to it: same heads as the tree
    probe = ("import json, pathlib; from ie_core.db import Database, migrate;"
             "from ie_core.pluginmanager import Hooks, make_plugin_manager;"
             "locations = Hooks(make_plugin_manager()).migration_locations();"
             "print(json.dumps({'revisions': {p: sorted(x.name for x in pathlib.Path(f)"
             ".glob('*.py') if x.name != '__init__.py') for p, f in locations},"
             "'inside': all(pathlib.Path(f).is_relative_to(pathlib.Path(migrate.__file__)"
             ".parents[2]) for _, f in locations),"
             f"'heads': sorted(migrate.wanted_heads(Database('sqlite:///{tmp_path}/h.db')))}}))")
    out = run([str(bindir / "python"), "-c", probe], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    shipped = json.loads(out.stdout)
    assert shipped["inside"]  # found in the venv's site-packages, not in the source tree
    in_tree = {name: sorted(p.name for p in (ROOT / "plugins" / name / "migrations").glob("0*.py"))
               for name in ("quarantine", "ratelimit", "bayes", "incoming", "notify", "whitelist",
                            "blocklist", "web")}
    assert shipped["revisions"] == in_tree
    assert shipped["heads"] == sorted(migrate.wanted_heads(Database(f"sqlite:///{tmp_path}/t.db")))
