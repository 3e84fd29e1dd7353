"""``ie-config reload`` and ``ie-config stop``: signal the ie-filterd named by its pid file
(``--pidfile``, else ``ie.pid_file`` or its default), never every ie on the host."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import click

from ie_core import pidfile
from ie_core.commands import emit_ok, fail, get_app, require_root

_PIDFILE = click.option("--pidfile", "pid_path", type=click.Path(dir_okay=False),
                        help="the daemon's pid file (default: ie.pid_file or "
                             "/run/ie/ie-filterd.pid)")


def _daemon_pid(given: str | None) -> int:
    return pidfile.running_pid(Path(given) if given else pidfile.default_path(get_app()))


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
    """Stop ie-filterd gracefully (SIGTERM) and wait until it has exited."""
    require_root()
    pid = _daemon_pid(pid_path)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not _gone(pid):
        fail(f"ie-filterd (pid {pid}) is still running after {timeout:.0f} s")
    emit_ok()
