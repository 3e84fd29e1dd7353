"""ie's own services: systemd units on systemd hosts, instructions elsewhere."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from ie_core import App, IeError, pidfile

from .files import atomic_write
from .wiring import run, summarise, templates

SYSTEMD_RUNNING = Path("/run/systemd/system")
SYSTEMCTL = "systemctl"
NOT_SYSTEMD = ("this host does not run systemd: start ie yourself, e.g. "
               "'ie-filterd{config_option} &' from your init system "
               "(see docs/operations.md, 'Hosts without systemd')")


def bindir() -> Path:
    """Where ie's console scripts are (the same environment as this program)."""
    return Path(sys.executable).parent


def daemons() -> list[str]:
    """ie's long-running programs installed here (the notifier and the web pages only
    when they exist)."""
    return [name for name in ("ie-filterd", "ie-notifyd", "ie-web")
            if (bindir() / name).exists()]


def config_option(app: App) -> str:
    """`` --config FILE`` for ie's daemons when this ie runs on a configuration file, else
    nothing: a fresh install has no /etc/ie/ie.toml, and the daemons read it once it exists
    (``--config`` makes a missing file an error)."""
    return f" --config {app.config.path.absolute()}" if app.config.path else ""


def render_units(app: App) -> dict[str, str]:
    env = templates(app)
    values = {"bindir": bindir(), "config_option": config_option(app),
              "stop_timeout": int(app.config.get("filter.shutdown_grace")) + 15,
              "docs": "/usr/share/doc/ie/operations.md"}
    return {f"{name}.service": env.get_template(f"{name}.service.j2").render(**values)
            for name in daemons()}


def systemd_host() -> bool:
    return SYSTEMD_RUNNING.is_dir()


def install(app: App, config_changed: bool = False) -> str:
    """Write the units, reload systemd, enable and start (or restart) ie's services.
    Without systemd: say how to start ie, or, when ``enable`` changed ie's own
    configuration, make the ie-filterd already running read it."""
    if not systemd_host():
        if config_changed:
            return reload_running(app)
        return NOT_SYSTEMD.format(config_option=config_option(app))
    unit_dir = Path(app.config.get("mta.systemd_unit_dir"))
    units = render_units(app)
    for name, text in units.items():
        atomic_write(unit_dir / name, text.encode())
    for args in (["daemon-reload"], ["enable", "--now", *units],
                 ["reload-or-restart", *units]):
        code, out = run([SYSTEMCTL, *args])
        if code != 0:
            return f"systemctl {' '.join(args)} failed: {summarise(out)}"
    return "services enabled and started: " + ", ".join(units)


def reload_running(app: App) -> str:
    """SIGHUP to the ie-filterd of ie's pid file, so that it reads its configuration again."""
    path = pidfile.default_path(app)
    try:
        pid = pidfile.running_pid(path)
    except IeError:
        return (f"ie's configuration changed (no ie-filterd runs on {path}: if one runs "
                "on another pid file, 'ie-config reload --pidfile FILE'); "
                + NOT_SYSTEMD.format(config_option=config_option(app)))
    os.kill(pid, signal.SIGHUP)
    return f"ie's configuration changed: ie-filterd (pid {pid}) told to read it again (SIGHUP)"


def stop(app: App) -> str:
    if not systemd_host():
        return ("this host does not run systemd: stop ie yourself ('ie-config stop', and "
                "ie-notifyd and ie-web from your init system)")
    units = [f"{name}.service" for name in daemons()]
    code, out = run([SYSTEMCTL, "disable", "--now", *units])
    if code != 0:
        return f"systemctl disable --now failed: {summarise(out)}"
    return "services stopped and disabled: " + ", ".join(units)
