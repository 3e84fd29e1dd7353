"""ie-filterd's pid file: ``ie-config reload`` and ``ie-config stop`` signal exactly this
daemon, never another ie instance on the host (``pkill -f`` would)."""

from __future__ import annotations

import os
from pathlib import Path

from ie_core.app import App
from ie_core.errors import IeError

NAME = "ie-filterd.pid"


def default_path(app: App) -> Path:
    """``ie.pid_file``, else ``/run/ie/ie-filterd.pid`` for root and
    ``DATA_DIR/ie-filterd.pid`` for anybody else."""
    configured = app.config.get("ie.pid_file")
    if configured:
        return Path(configured)
    return (Path("/run/ie") if os.geteuid() == 0 else app.data_dir) / NAME


def _alive_filterd(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"ie-filterd" in cmdline or b"ie_core.daemon" in cmdline


def running_pid(path: Path) -> int:
    """The pid of the ie-filterd that wrote ``path``; IeError when there is none."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise IeError(f"ie-filterd is not running (no pid file {path})") from None
    except OSError as err:
        raise IeError(f"cannot read {path}: {err.strerror or err}") from None
    if not text.isdigit() or not _alive_filterd(int(text)):
        raise IeError(f"ie-filterd is not running (stale pid file {path})")
    return int(text)


def claim(path: Path) -> None:
    """Write this process's pid to ``path``; IeError when another ie-filterd runs there."""
    try:
        other = running_pid(path)
    except IeError:
        other = None
    if other is not None and other != os.getpid():
        raise IeError(f"ie-filterd is already running (pid {other}, {path})")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(path)


def release(path: Path) -> None:
    """Remove ``path`` if it still names this process."""
    try:
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()
    except OSError:
        pass
