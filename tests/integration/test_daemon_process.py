"""ie-filterd as a real process: worker processes, SIGTERM with mail in flight, SIGHUP,
refusing to start on an old schema."""

from __future__ import annotations

import os
import signal
import smtplib
import sqlite3
import subprocess
import threading
import time

import pytest

from ie_plugins.mta import services
from tests.fixtures.daemon import BIN, DaemonProcess, write_config
from tests.fixtures.sink import free_port
from tests.unit.test_mta_commands import EXIM_CONF

MSG = b"From: a@example.com\r\nSubject: t\r\n\r\nbody\r\n"


def test_two_worker_processes_share_the_listeners(tmp_path, sink):
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}",
                                 "filter.workers": 2}).start()
    try:
        for i in range(10):
            with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
                s.sendmail("a@example.com", [f"r{i}@example.org"], MSG)
        assert len(sink.wait_for(10)) == 10
        pids = {line.split("pid=")[1].split()[0] for line in d.log().splitlines()
                if "event=listening direction=outgoing" in line}
        assert len(pids) == 2
    finally:
        assert d.stop() == 0


@pytest.mark.parametrize("victim", ["worker", "services"])
def test_sigterm_while_a_dead_child_is_being_replaced_stops_everything(tmp_path, sink, victim):
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}",
                                 "filter.workers": 2}).start()
    try:
        event = "event=listening direction=outgoing" if victim == "worker" \
            else "event=workers_started"
        line = next(x for x in d.log().splitlines() if event in x)
        os.kill(int(line.split("pid=")[1].split()[0]), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while ("event=worker_died" not in d.log() and "event=services_restarting"
               not in d.log() and time.monotonic() < deadline):
            time.sleep(0.01)
        d.signal(signal.SIGTERM)  # during the pause before the replacement is forked
        assert d.proc is not None and d.proc.wait(20) == 0
    finally:
        d.stop()


def test_sigterm_finishes_the_message_in_flight(tmp_path, sink):
    sink.handler.mode = "hang"
    sink.handler.hang_seconds = 1.5  # the downstream is slow, not dead
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}"}).start()
    result: dict[str, object] = {}

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=20) as s:
            result["refused"] = s.sendmail("a@example.com", ["b@example.org"], MSG)

    t = threading.Thread(target=send)
    t.start()
    time.sleep(0.7)  # the message is now waiting on the downstream's DATA reply
    d.signal(signal.SIGTERM)
    t.join(20)
    assert result.get("refused") == {}  # answered 250 after the sink accepted
    assert d.proc is not None and d.proc.wait(20) == 0
    assert "event=stopped" in d.log()
    try:
        smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=2)
        raise AssertionError("still accepting after SIGTERM")
    except OSError:
        pass


def test_sighup_reloads_configuration(tmp_path, sink):
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}"}).start()
    try:
        text = d.config.read_text().replace("[ie]", '[ie]\nlog_level = "debug"')
        d.config.write_text(text)
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "event=reloaded" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "event=reloaded" in d.log()
        assert "event=reload_needs_restart keys=ie.log_level" in d.log()
        d.config.write_text(text.replace("[filter]", "[filter]\nbogus_key = 1"))
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "event=reload_failed" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "unknown configuration key 'filter.bogus_key'" in d.log()
        with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:  # still serving
            s.sendmail("a@example.com", ["b@example.org"], MSG)
        assert len(sink.wait_for(1)) == 1
    finally:
        d.stop()


def _wait_in_log(d: DaemonProcess, text: str, count: int = 1) -> None:
    deadline = time.monotonic() + 10
    while d.log().count(text) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert d.log().count(text) >= count, d.log()


def test_a_plugin_enabled_by_sighup_needs_its_tables_first(tmp_path, sink):
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}",
                                 "plugins.disabled": ["whitelist"]}).start()
    db = tmp_path / "ie-data" / "ie.db"
    try:
        with sqlite3.connect(db) as con:  # --init-db left the disabled plugin's table out
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        assert "whitelist_entries" not in tables and "quarantine_messages" in tables
        d.config.write_text(d.config.read_text().replace('disabled = ["whitelist"]',
                                                         "disabled = []"))
        d.signal(signal.SIGHUP)
        _wait_in_log(d, "event=reload_failed")
        assert "0007_whitelist not applied" in d.log()
        with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:  # still serving
            s.sendmail("a@example.com", ["b@example.org"], MSG)
        assert len(sink.wait_for(1)) == 1
        out = subprocess.run([str(BIN / "ie-config"), "--config", str(d.config), "db",
                              "upgrade"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        d.signal(signal.SIGHUP)
        _wait_in_log(d, "event=reloaded")
    finally:
        assert d.stop() == 0


def test_refuses_to_start_on_a_schema_that_is_behind(tmp_path):
    cfg = write_config(tmp_path / "ie.toml", {"ie.data_dir": str(tmp_path / "d")})
    out = subprocess.run([str(BIN / "ie-filterd"), "--config", str(cfg)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "ie-config db upgrade" in lines[0]


def test_a_bad_pipeline_or_address_stops_it_at_start_with_one_line(tmp_path):
    for name, values, message in (
            ("typo", {"pipeline.outgoing": ["whitelist", "clasify"]},
             "no loaded plugin provides a stage named 'clasify'"),
            ("phases", {"pipeline.outgoing": ["whitelist", "ratelimit", "classify"]},
             "stage 'classify' (check) is listed after 'ratelimit' (decide)"),
            ("addr", {"filter.reinject": "localhost"}, "filter.reinject must be HOST:PORT"),
            ("backend", {"classify.outgoing_backend": "rspamd", "rspamd.address": "localhost"},
             "rspamd.address must be HOST:PORT")):
        cfg = write_config(tmp_path / f"{name}.toml", {"ie.data_dir": str(tmp_path / name),
                                                       **values})
        out = subprocess.run([str(BIN / "ie-filterd"), "--config", str(cfg), "--init-db"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], out.stderr


@pytest.mark.parametrize("program", ["ie-filterd", "ie-notifyd"])
def test_a_bad_database_stops_it_at_start_with_one_line(tmp_path, program):
    port = free_port()  # nothing listens there
    for name, url, message in (
            ("malformed", "foo",
             "database error: Could not parse SQLAlchemy URL from given URL string"),
            ("unreachable", f"postgresql+psycopg://ie@127.0.0.1:{port}/ie?connect_timeout=2",
             "database error: connection failed: connection to server at")):
        cfg = write_config(tmp_path / f"{name}.toml", {"ie.data_dir": str(tmp_path / name),
                                                       "ie.database_url": url})
        out = subprocess.run([str(BIN / program), "--config", str(cfg)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2
        [line] = out.stderr.strip().splitlines()
        assert line.startswith(f"{program}: {message}"), out.stderr


def test_pidfile_reload_and_stop_signal_this_daemon_only(tmp_path, sink):
    """ie-config reload/stop use the daemon's pid file, so a second ie on the host is
    never signalled; a second daemon on the same pid file refuses to start (issue 16)."""
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}"}).start()
    other = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}"},
                          name="other").start()
    config = [str(BIN / "ie-config"), "--config", str(d.config)]
    try:
        pid_file = tmp_path / "ie.pid"
        assert d.proc is not None and pid_file.read_text().strip() == str(d.proc.pid)
        out = subprocess.run([str(BIN / "ie-filterd"), "--config", str(d.config)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 2
        assert out.stderr.strip() == (f"ie-filterd: ie-filterd is already running "
                                      f"(pid {d.proc.pid}, {pid_file})")
        assert subprocess.run(config + ["reload"], capture_output=True, text=True,
                              timeout=30).stdout == "OK\n"
        deadline = time.monotonic() + 10
        while "event=reloaded" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "event=reloaded" in d.log() and "event=reloaded" not in other.log()
        assert subprocess.run(config + ["stop"], capture_output=True, text=True,
                              timeout=90).stdout == "OK\n"
        assert d.proc.wait(10) == 0 and not pid_file.exists()
        assert other.proc is not None and other.proc.poll() is None  # untouched
        out = subprocess.run(config + ["reload"], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0
        assert out.stderr.strip() == f"ie-config: error: ie-filterd is not running " \
                                     f"(no pid file {pid_file})"
    finally:
        d.stop()
        other.stop()




def test_ie_notifyd_has_a_pid_file_and_ie_config_stop_stops_it_too(tmp_path, sink):
    """ie-notifyd writes ie-notifyd.pid next to ie-filterd's, refuses a second instance on
    it, and ``ie-config stop`` stops both daemons of the configuration."""
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}"}).start()
    notifyd_pid = tmp_path / "ie-notifyd.pid"
    notifyd = subprocess.Popen([str(BIN / "ie-notifyd"), "--config", str(d.config)],
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not notifyd_pid.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert notifyd_pid.read_text().strip() == str(notifyd.pid)
        second = subprocess.run([str(BIN / "ie-notifyd"), "--config", str(d.config)],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert second.stderr.strip() == (f"ie-notifyd: ie-notifyd is already running "
                                         f"(pid {notifyd.pid}, {notifyd_pid})")
        out = subprocess.run([str(BIN / "ie-config"), "--config", str(d.config), "stop"],
                             capture_output=True, text=True, timeout=90)
        assert out.stdout == "OK\n", out.stderr
        assert notifyd.wait(10) == 0 and not notifyd_pid.exists()
        assert d.proc is not None and d.proc.wait(10) == 0
    finally:
        if notifyd.poll() is None:
            notifyd.kill()
        d.stop()


@pytest.mark.skipif(services.systemd_host(), reason="enable would install systemd units here")
def test_exim_enable_makes_the_running_daemon_read_the_configuration_it_wrote(tmp_path, sink):
    """Without systemd, ``ie-config enable --mta exim`` writes identity.auth_header into
    ie's configuration and tells the ie-filterd of the pid file to read it (issue 16)."""
    exim_conf = tmp_path / "exim.conf"
    exim_conf.write_text(EXIM_CONF)
    exim = tmp_path / "exim"  # the check passes; the Exim daemon's pid file names nobody
    exim.write_text(f"#!/bin/sh\necho 'pid_file_path = {tmp_path}/exim.pid'\n")
    exim.chmod(0o755)
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}",
                                 "mta.exim_config": str(exim_conf),
                                 "mta.exim_binary": str(exim),
                                 "mta.backup_dir": str(tmp_path / "backups")}).start()
    try:
        out = subprocess.run([str(BIN / "ie-config"), "--config", str(d.config), "enable",
                              "--mta", "exim"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert d.proc is not None
        assert out.stdout.splitlines()[-1] == (
            f"ie's configuration changed: ie-filterd (pid {d.proc.pid}) told to read it "
            "again (SIGHUP)")
        assert 'auth_header = "X-IE-Auth-User"' in d.config.read_text()
        deadline = time.monotonic() + 10
        while "event=reloaded" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "event=reloaded" in d.log()
    finally:
        d.stop()
