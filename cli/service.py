"""``ie-config reload`` and ``ie-config stop``: signal the ie-filterd named by its pid file
(``--pidfile``, else ``ie.pid_file`` or its default), never every ie on the host; ``stop``
also stops the ie-notifyd whose pid file lies next to it."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import click

from ie_core import IeError, pidfile
from ie_core.commands import emit_ok, fail, get_app, require_root

_PIDFILE = click.option("--pidfile", "pid_path", type=click.Path(dir_okay=False),
                        help="the daemon's pid file (default: ie.pid_file or "
                             "/run/ie/ie-filterd.pid)")


def _pid_path(given: str | None, program: str = pidfile.FILTERD) -> Path:
    if not given:
        return pidfile.default_path(get_app(), program)
    return Path(given) if program == pidfile.FILTERD else Path(given).with_name(f"{program}.pid")


def _daemon_pid(given: str | None) -> int:
    return pidfile.running_pid(_pid_path(given))


def _gone(pid: int) -> bool:
    """Exited (a zombie its parent has not reaped yet counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


@click.command("reload")
@_PIDFILE
def reload(pid_path: str | None) -> None:
    """Make ie-filterd read its configuration again (SIGHUP)."""
    require_root()
    os.kill(_daemon_pid(pid_path), signal.SIGHUP)
    emit_ok()


@click.command("stop")
@_PIDFILE
@click.option("--timeout", default=60.0, show_default=True,
              help="seconds to wait for the messages in flight to finish")
def stop(pid_path: str | None, timeout: float) -> None:
    """Stop ie-filterd gracefully (SIGTERM), and ie-notifyd when its pid file names one,
    and wait until they have exited."""
    require_root()
    pids = {pidfile.FILTERD: _daemon_pid(pid_path)}
    # ie-notifyd may not run here (cron runs ie-notifyd --once, or another init system)
    with contextlib.suppress(IeError):
        pids[pidfile.NOTIFYD] = pidfile.running_pid(_pid_path(pid_path, pidfile.NOTIFYD),
                                                    pidfile.NOTIFYD)
    for pid in pids.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not all(map(_gone, pids.values())) and time.monotonic() < deadline:
        time.sleep(0.1)
    for program, pid in pids.items():
        if not _gone(pid):
            fail(f"{program} (pid {pid}) is still running after {timeout:.0f} s")
    emit_ok()
