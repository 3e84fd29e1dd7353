"""ie-filterd's monitoring endpoint on ``filter.metrics_listen`` (a background service,
once per daemon): ``/metrics`` in the Prometheus text format, ``/healthz`` (200 when the
listeners accept, the database answers and the reinjection MTA greets; 503 naming what
failed).  It also counts the outbox events (``ie_events_total``) with a cursor of its own,
so quarantine actions done by ``ie-cli`` in another process are counted too.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import text

from ie_core import metrics
from ie_core.app import App
from ie_core.background import BackgroundService
from ie_core.config import parse_hostport
from ie_core.events import Subscriber

log = logging.getLogger("ie.metrics")

CONSUMER = "metrics@{host}"
"""The cursor name (``event_cursors``) of the event counter: one per host, so that
ie-filterd nodes sharing a database each count every event once."""
CHECK_TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def health(app: App) -> list[Check]:
    """Listeners, database, reinjection: each checked for real, each with a reason."""
    checks = []
    for key in ("filter.outgoing_listen", "filter.incoming_listen"):
        checks.append(_tcp(f"listener {key.split('.')[1].removesuffix('_listen')}",
                           app.config.get(key)))
    checks.append(_database(app))
    reinjects = [app.config.get("filter.reinject")]
    if app.config.get("filter.incoming_reinject") not in ("", reinjects[0]):
        reinjects.append(app.config.get("filter.incoming_reinject"))
    checks.extend(_smtp(f"reinjection {address}", address) for address in reinjects)
    return checks


def _tcp(name: str, address: str) -> Check:
    host, port = parse_hostport(address, name)
    try:
        with socket.create_connection((host, port), timeout=CHECK_TIMEOUT):
            return Check(name, True, f"accepts on {address}")
    except OSError as err:
        return Check(name, False, f"{address}: {err.strerror or err}")


def _database(app: App) -> Check:
    try:
        with app.db.reading() as s:
            s.execute(text("SELECT 1"))
    except Exception as err:
        return Check("database", False, " ".join(f"{type(err).__name__}: {err}".split())[:200])
    return Check("database", True, "answers")


def _smtp(name: str, address: str) -> Check:
    host, port = parse_hostport(address, name)
    try:
        with smtplib.SMTP(host, port, timeout=CHECK_TIMEOUT) as conn:
            code, _ = conn.noop()
    except (OSError, smtplib.SMTPException) as err:
        return Check(name, False, " ".join(str(err).split())[:200] or type(err).__name__)
    if code != 250:
        return Check(name, False, f"NOOP answered {code}")
    return Check(name, True, "greets and answers NOOP")


def bind(app: App) -> socket.socket | None:
    """The endpoint's listening socket, ``None`` when ``filter.metrics_listen`` is empty.
    Raises :class:`OSError` naming the setting when the address cannot be had."""
    listen = app.config.get("filter.metrics_listen")
    if not listen:
        return None
    host, port = parse_hostport(listen, "filter.metrics_listen")
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host
                                    else socket.AF_INET)
    except OSError as err:
        why = os.strerror(err.errno) if err.errno else str(err)
        raise OSError(f"filter.metrics_listen {listen}: {why} (another HOST:PORT, or empty "
                      "to turn the endpoint off)") from err


def service(app: App, sock: socket.socket | None) -> BackgroundService | None:
    """The endpoint's service on ``sock`` (from :func:`bind`; with workers the parent
    binds it once, so a restarted services process finds it ready); ``None`` when there
    is no socket (the endpoint is off)."""
    if sock is None:
        return None
    metrics.enable()
    listening = sock

    def run(stop: threading.Event) -> None:
        collectors = app.hooks.metrics_collectors(app)
        server = ThreadingHTTPServer(listening.getsockname()[:2], _handler(app, collectors),
                                     bind_and_activate=False)
        server.socket.close()  # the one made for us: ours is already listening
        server.socket = listening
        server.daemon_threads = True
        serving = threading.Thread(target=server.serve_forever, name="ie-metrics-http",
                                   daemon=True)
        serving.start()
        log.info("event=metrics_listening address=%s", app.config.get("filter.metrics_listen"))
        events = Subscriber(app.db, CONSUMER.format(host=app.hostname)[:64],
                            app.wake_endpoint, app.config.get("events.poll_interval"))
        try:
            events.start_at_end()
            while not stop.wait(app.config.get("events.poll_interval")):
                events.catch_up(lambda ev: metrics.get().events.labels(ev.kind).inc())
        finally:
            server.shutdown()
            if stop.is_set():  # for good; after an error the service runs again on it
                listening.close()

    return BackgroundService("metrics-http", run)


def _handler(app: App, collectors: Sequence[Any]) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.exposition(collectors),
                           "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/healthz":
                checks = health(app)
                body = "".join(c.line() + "\n" for c in checks).encode()
                self._send(200 if all(c.ok for c in checks) else 503, body,
                           "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("event=metrics_request " + format, *args)

    return Handler
