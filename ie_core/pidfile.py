"""The daemons' pid files: ``ie-config reload`` and ``ie-config stop`` signal exactly the
ie-filterd (and ie-notifyd) of this configuration, never another ie instance on the host
(``pkill -f`` would).  ie-notifyd's file sits next to ie-filterd's."""

from __future__ import annotations

import os
from pathlib import Path

from ie_core.app import App
from ie_core.errors import IeError

FILTERD = "ie-filterd"
NOTIFYD = "ie-notifyd"
_MARKERS = {FILTERD: (b"ie-filterd", b"ie_core.daemon"),
            NOTIFYD: (b"ie-notifyd", b"notify.daemon")}


def default_path(app: App, program: str = FILTERD) -> Path:
    """ie-filterd's: ``ie.pid_file``, else ``/run/ie/ie-filterd.pid`` for root and
    ``DATA_DIR/ie-filterd.pid`` for anybody else; ie-notifyd's: ``ie-notifyd.pid`` in
    the same folder."""
    configured = app.config.get("ie.pid_file")
    filterd = (Path(configured) if configured else
               (Path("/run/ie") if os.geteuid() == 0 else app.data_dir) / f"{FILTERD}.pid")
    return filterd if program == FILTERD else filterd.with_name(f"{program}.pid")


def _alive(pid: int, program: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(marker in cmdline for marker in _MARKERS[program])


def running_pid(path: Path, program: str = FILTERD) -> int:
    """The pid of the ``program`` that wrote ``path``; IeError when there is none."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise IeError(f"{program} is not running (no pid file {path})") from None
    except OSError as err:
        raise IeError(f"cannot read {path}: {err.strerror or err}") from None
    if not text.isdigit() or not _alive(int(text), program):
        raise IeError(f"{program} is not running (stale pid file {path})")
    return int(text)


def claim(path: Path, program: str = FILTERD) -> None:
    """Write this process's pid to ``path``; IeError when another ``program`` runs there."""
    try:
        other = running_pid(path, program)
    except IeError:
        other = None
    if other is not None and other != os.getpid():
        raise IeError(f"{program} is already running (pid {other}, {path})")
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
