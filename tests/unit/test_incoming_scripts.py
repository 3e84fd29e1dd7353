"""What reaches the Sieve scripts, Dovecot's snippet and the learn-pipe shell script from
the configuration is checked, the learn spool belongs to one instance (its data
directory), and every spool file the drain skips is logged with why."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ie_core import App, ConfigError
from ie_core.db.session import ensure_private
from ie_plugins.incoming import dovecot, spool

HOSTILE_FOLDERS = ['Junk"; discard; "', "Junk\nstop;", "Junk${1}", "Ju\\nk", "*", "Junk#x",
                   " Junk", "$(reboot)", "`id`", "../Junk", ""]
HOSTILE_PATHS = ["/var/spool/ie learn", "/tmp/x'; rm -rf /; '", "relative/learn",
                 "/tmp/$(id)", "/tmp/`id`", "/tmp/a\nb", "/tmp/../etc", '/tmp/"q"']


@pytest.mark.parametrize("value", HOSTILE_FOLDERS)
def test_a_hostile_junk_folder_stops_the_daemon_with_one_line(make_app, value):
    app = make_app(**{"incoming.junk_mailbox": value})
    with pytest.raises(ConfigError) as err:
        app.check_pipeline()
    assert "incoming.junk_mailbox" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("value", HOSTILE_PATHS)
def test_a_hostile_learn_spool_is_refused(make_app, value):
    app = make_app(**{"incoming.learn_spool": value})
    with pytest.raises(ConfigError) as err:
        dovecot.Layout.from_app(app)
    assert "incoming.learn_spool" in str(err.value)


def test_a_hostile_trash_folder_is_refused(make_app):
    with pytest.raises(ConfigError, match="incoming.trash_mailbox"):
        dovecot.Layout.from_app(make_app(**{"incoming.trash_mailbox": 'T"rash'}))


@pytest.mark.skipif(shutil.which("sievec") is None, reason="sievec (dovecot-sieve) missing")
def test_a_folder_with_spaces_and_accents_gives_scripts_that_compile(make_app, tmp_path):
    app = make_app(**{"incoming.junk_mailbox": "Junk E-mail/Ünwanted",
                      "incoming.sieve_dir": str(tmp_path / "sieve")})
    layout = dovecot.Layout.from_app(app)
    files = dovecot.render_all(layout, {})
    conf = tmp_path / "sievec.conf"  # what the snippet enables for the IMAPSieve scripts
    conf.write_text("plugin {\n  sieve_plugins = sieve_imapsieve sieve_extprograms\n"
                    "  sieve_global_extensions = +vnd.dovecot.pipe +vnd.dovecot.environment\n}\n")
    for name in dovecot.SCRIPTS:
        script = tmp_path / name
        script.write_text(files[layout.sieve_dir / name][0])
        done = subprocess.run(["sievec", "-c", str(conf), str(script), str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, (name, done.stderr)
    assert 'fileinto :create "Junk E-mail/Ünwanted";' in files[
        layout.sieve_dir / "spam-to-junk.sieve"][0]


def test_the_learn_spool_defaults_into_the_data_directory(make_app, tmp_path):
    app = make_app()
    assert spool.spool_dir(app) == app.config.data_dir / "learn"
    assert dovecot.Layout.from_app(app).spool == app.config.data_dir / "learn"
    explicit = make_app(**{"incoming.learn_spool": str(tmp_path / "elsewhere")})
    assert spool.spool_dir(explicit) == tmp_path / "elsewhere"


class Recorder:
    def __init__(self) -> None:
        self.learned: list[bool] = []

    from ie_core import hookimpl

    @hookimpl
    def ie_learn(self, app: App, raw: bytes, spam: bool) -> None:
        self.learned.append(spam)


def test_two_instances_on_one_host_do_not_learn_each_others_reports(
        make_app: Callable[..., App], tmp_path: Path) -> None:
    staging, production = Recorder(), Recorder()
    app_a = make_app(plugins=[("rec", staging)], **{"ie.data_dir": str(tmp_path / "a")})
    app_b = make_app(plugins=[("rec", production)], **{"ie.data_dir": str(tmp_path / "b")})
    new = spool.spool_dir(app_a) / "new"
    new.mkdir(parents=True)
    (spool.spool_dir(app_a) / "cur").mkdir()
    (new / "spam.1.2.abc").write_bytes(b"Subject: s\n\nbody")
    assert spool.drain(app_b, spool.spool_dir(app_b), 1000).learned == 0
    assert spool.drain(app_a, spool.spool_dir(app_a), 1000).learned == 1
    assert (staging.learned, production.learned) == ([True], [])


def test_each_skipped_spool_file_is_logged_with_why(make_app, tmp_path, caplog):
    root = tmp_path / "spool"
    for sub in ("new", "cur"):
        (root / sub).mkdir(parents=True)
    (root / "new" / "junk.1.2.x").write_bytes(b"x")
    (root / "new" / "spam.2.2.x").write_bytes(b"x" * 50)
    (root / "new" / "ham.3.2.x").mkdir()
    (root / "new" / "spam.4.2 evil=1").symlink_to("/etc/passwd")
    with caplog.at_level(logging.WARNING, logger="ie.incoming"):
        result = spool.drain(make_app(), root, 10)
    assert result.skipped == 4
    lines = sorted(r.getMessage() for r in caplog.records if "learn_skipped" in r.getMessage())
    assert len(lines) == 4
    whys = " | ".join(lines)
    assert "report=junk.1.2.x why=name does not start with spam. or ham." in whys
    assert "report=spam.2.2.x why=larger than incoming.learn_max_bytes (10)" in whys
    assert "report=ham.3.2.x why=not a regular file" in whys
    assert "report=spam.4.2?evil?1 why=cannot open" in whys  # a symlink is never followed
    assert os.listdir(root / "new") == os.listdir(root / "cur") == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change owners")
def test_a_spool_in_the_data_directory_opens_passage_for_the_mail_group_only(make_app):
    app = make_app()
    layout = dovecot.Layout.from_app(app)
    app.data_dir  # noqa: B018  (created private)
    dovecot.prepare_spool(layout)
    info = layout.data_dir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o710
    assert info.st_gid == pwd.getpwnam(layout.mail_user).pw_gid
    ensure_private(layout.data_dir)  # the daemon's next start keeps the passage
    assert stat.S_IMODE(layout.data_dir.stat().st_mode) == 0o710
    os.chmod(layout.data_dir, 0o777)
    ensure_private(layout.data_dir)  # but never more than that
    assert stat.S_IMODE(layout.data_dir.stat().st_mode) == 0o710


def test_the_sqlite_file_is_created_owner_only(make_app):
    app = make_app()
    db_file = app.config.data_dir / "ie.db"
    assert db_file.exists()
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
