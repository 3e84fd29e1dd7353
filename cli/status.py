"""``ie-config status``: is everything needed working?"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import click

from ie_core import StatusItem, __version__
from ie_core.app import App
from ie_core.commands import emit, get_app
from ie_core.config import parse_hostport
from ie_core.db import migrate


def core_items(app: App) -> list[StatusItem]:
    items = [StatusItem("version", True, __version__, required=False)]
    for key in ("filter.outgoing_listen", "filter.incoming_listen"):
        host, port = parse_hostport(app.config.get(key), key)
        try:
            with socket.create_connection((host, port), timeout=3) as sock:
                sock.settimeout(3)
                banner = sock.recv(512).decode("ascii", "replace").strip()
            ok = banner.startswith("220")
            items.append(StatusItem(f"listener {key.split('.')[1]}", ok,
                                    f"{host}:{port} {banner[:60]}"))
        except OSError as err:
            items.append(StatusItem(f"listener {key.split('.')[1]}", False,
                                    f"{host}:{port} not answering ({err.strerror or err})"))
    try:
        migrate.check(app.db, hooks=app.hooks)
        items.append(StatusItem("database", True, f"{app.db.engine.dialect.name}, schema current"))
    except Exception as err:
        items.append(StatusItem("database", False, " ".join(str(err).split())[:200]))
    items.append(endpoint_item(app))
    return items


def endpoint_item(app: App) -> StatusItem:
    """The daemon's own health view (``/healthz``), where Prometheus looks."""
    name, listen = "monitoring endpoint", app.config.get("filter.metrics_listen")
    if not listen:
        return StatusItem(name, True, "off (filter.metrics_listen is empty)", required=False)
    url = f"http://{listen}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            return StatusItem(name, True, f"{url} answers {resp.status}", required=False)
    except urllib.error.HTTPError as err:
        failing = [line for line in err.read().decode("utf-8", "replace").splitlines()
                   if line.startswith("FAIL ")]
        return StatusItem(name, False, f"{url} answers {err.code}: "
                          + "; ".join(line.removeprefix("FAIL ") for line in failing),
                          required=False)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return StatusItem(name, False, f"{url} not answering ({reason})", required=False)


@click.command("status")
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """Daemon, MTA wiring, database, incoming filtering, classifier: OK or not."""
    app = get_app()
    items = core_items(app) + app.hooks.status(app)
    bad = [i for i in items if i.required and not i.ok]
    data = {"ok": not bad, "items": [{"name": i.name, "ok": i.ok, "detail": i.detail,
                                      "required": i.required} for i in items]}
    emit(data, as_json, lambda: "\n".join(
        f"{'OK  ' if i.ok else 'FAIL'} {i.name}: {i.detail}" for i in items))
    if bad:
        raise click.exceptions.Exit(1)
