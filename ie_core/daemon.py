"""``ie-filterd``: the two listeners, the background services, graceful SIGTERM, SIGHUP
reload.

With ``filter.workers`` > 1 the parent binds the listeners and forks the workers (each
serves SMTP and runs the ``WORKER`` background services) and one services process (the
``DAEMON`` services, once per daemon); it restarts any of them that dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from ie_core import events, message_log, metrics, metrics_http, pidfile
from ie_core.app import App, create_app
from ie_core.background import BackgroundService, Runner, Scope
from ie_core.config import parse_hostport
from ie_core.db import describe_error, migrate
from ie_core.errors import IeError
from ie_core.smtp.reinject import Reinjector
from ie_core.smtp.server import FilterHandler, FilterSMTP, Limits
from ie_core.verdict import Direction

log = logging.getLogger("ie.daemon")


@dataclass
class Listener:
    direction: Direction
    handler: FilterHandler
    server: asyncio.AbstractServer


RESTART_KEYS = (
    "ie.data_dir", "ie.database_url", "ie.hostname", "ie.log_level",
    "filter.outgoing_listen", "filter.incoming_listen", "filter.reinject",
    "filter.incoming_reinject", "filter.reinject_timeout", "filter.reinject_idle",
    "filter.reinject_max_per_connection", "filter.max_concurrent", "filter.workers",
    "filter.max_sessions", "filter.spool_threshold", "filter.max_large_in_flight",
    "filter.metrics_listen",
)
"""Read once when ie-filterd starts (listeners, reinjection pools, the database, threads)."""


class FilterDaemon:
    """Runs the listeners on one asyncio loop; blocking work goes to ``executor``."""

    def __init__(self, app: App, sockets: dict[Direction, socket.socket] | None = None,
                 scopes: tuple[Scope, ...] = (Scope.DAEMON, Scope.WORKER)) -> None:
        self.app = app
        self._sockets = sockets or {}
        self._scopes = scopes
        self.background: Runner | None = None
        if app.config.get("filter.metrics_listen"):
            metrics.enable()
        self.listeners: list[Listener] = []
        self.executor = ThreadPoolExecutor(
            max_workers=max(2, 2 * app.config.get("filter.max_concurrent")),
            thread_name_prefix="ie-worker")
        self._stopping = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._reinjectors: list[Reinjector] = []

    def _reinjector(self, setting: str) -> Reinjector:
        r = Reinjector.from_config(self.app, setting)
        self._reinjectors.append(r)
        return r

    async def start(self, install_signals: bool = True) -> None:
        loop = self.loop = asyncio.get_running_loop()
        out_reinject = self._reinjector("filter.reinject")
        in_reinject = (self._reinjector("filter.incoming_reinject")
                       if self.app.config.get("filter.incoming_reinject") else out_reinject)
        large_slots = asyncio.Semaphore(max(1, self.app.config.get("filter.max_large_in_flight")))
        for direction, listen, reinjector in (
                (Direction.OUTGOING, "filter.outgoing_listen", out_reinject),
                (Direction.INCOMING, "filter.incoming_listen", in_reinject)):
            handler = FilterHandler(self.app, direction, reinjector, self.executor,
                                    Limits.from_config(self.app, large_slots))
            sock = self._sockets.get(direction) or bind(self.app.config.get(listen), listen)
            server = await loop.create_server(
                lambda h=handler: FilterSMTP(  # type: ignore[misc]
                    h, data_size_limit=self.app.config.get("filter.max_message_size"),
                    enable_SMTPUTF8=True, hostname=self.app.hostname,
                    ident="ie-filterd", timeout=300),
                sock=sock)
            self.listeners.append(Listener(direction, handler, server))
            log.info("event=listening direction=%s address=%s pid=%d", direction,
                     self.app.config.get(listen), os.getpid())
        if install_signals:
            for sig, fn in ((signal.SIGTERM, self.request_stop),
                            (signal.SIGINT, self.request_stop), (signal.SIGHUP, self.reload)):
                loop.add_signal_handler(sig, fn)
        self.app.hooks.startup(self.app)
        metrics_socket = metrics_http.bind(self.app) if Scope.DAEMON in self._scopes else None
        self.background = Runner(services(self.app, self._scopes, metrics_socket),
                                 self._scopes)
        self.background.start()

    def request_stop(self) -> None:
        log.info("event=stopping")
        self._stopping.set()

    def reload(self) -> None:
        """SIGHUP: re-read the file; the new configuration applies to the next message,
        except the keys read only at start (:data:`RESTART_KEYS`): a change to one of
        those is logged as needing a restart.  A configuration that enables a plugin whose
        tables are missing is refused (run ``ie-config db upgrade`` first)."""
        try:
            new = create_app(self.app.config.path, clock=self.app.clock)
            new.check_pipeline()
            migrate.check(new.db, hooks=new.hooks)  # a plugin enabled now has its tables
        except (IeError, SQLAlchemyError) as err:
            log.error("event=reload_failed error=%s", " ".join(str(err).split())[:300])
            return
        pending = [k for k in RESTART_KEYS if new.config.get(k) != self.app.config.get(k)]
        if pending:
            log.warning("event=reload_needs_restart keys=%s (they keep their old values "
                        "until ie-filterd restarts)", ",".join(pending))
        self.app.reconfigure(new.config, new.hooks)
        new.close()  # it only served the check; the running App keeps its own database
        log.info("event=reloaded config=%s", self.app.config.path or "(defaults)")

    async def serve_until_stopped(self) -> None:
        await self._stopping.wait()
        for listener in self.listeners:
            listener.server.close()  # stop accepting; sessions already open go on
        grace = self.app.config.get("filter.shutdown_grace")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(x.handler.in_flight for x in self.listeners) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        left = sum(x.handler.in_flight for x in self.listeners)
        if left:
            log.warning("event=shutdown_with_messages_in_flight count=%d", left)
        if self.background is not None:
            await loop.run_in_executor(None, self.background.stop)
        self.app.hooks.shutdown(self.app)
        for r in self._reinjectors:
            r.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.info("event=stopped")


def bind(address: str, what: str) -> socket.socket:
    host, port = parse_hostport(address, what)
    return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host
                                else socket.AF_INET, backlog=128, reuse_port=False)


async def run(app: App, sockets: dict[Direction, socket.socket] | None = None,
              scopes: tuple[Scope, ...] = (Scope.DAEMON, Scope.WORKER)) -> None:
    daemon = FilterDaemon(app, sockets, scopes)
    await daemon.start()
    await daemon.serve_until_stopped()


def services(app: App, scopes: tuple[Scope, ...],
             metrics_socket: socket.socket | None) -> list[BackgroundService]:
    """The plugins' background services and, in a process that runs ``DAEMON`` ones,
    core's own: the event observers' dispatch (when a plugin observes events), the
    monitoring endpoint on ``metrics_socket`` (``None``: off) and the message log's
    pruning.  Core's are declared only
    there because declaring the dispatch places its cursor in the database."""
    declared = app.hooks.background(app)
    if Scope.DAEMON in scopes:
        core = [events.observers_service(app), metrics_http.service(app, metrics_socket),
                message_log.prune_service(app)]
        declared += [s for s in core if s is not None]
    return declared


def serve_background(app: App, metrics_socket: socket.socket | None) -> None:
    """The services process: the ``DAEMON`` background services until SIGTERM (the
    parent answers SIGHUP by restarting this process, so it reads the new configuration)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda _sig, _frame: stop.set())
    runner = Runner(services(app, (Scope.DAEMON,), metrics_socket), (Scope.DAEMON,))
    runner.start()
    while not stop.wait(0.5):
        pass
    runner.stop()


def run_workers(app: App, count: int) -> int:
    """Pre-fork model: the parent binds the listeners, ``count`` workers serve them and
    one services process runs the ``DAEMON`` background services.

    The parent restarts a child that dies unexpectedly and passes SIGTERM/SIGHUP on; on
    SIGHUP the services process is restarted (it reads the configuration anew), the
    workers reload in place.
    """
    sockets = {Direction.OUTGOING: bind(app.config.get("filter.outgoing_listen"),
                                        "filter.outgoing_listen"),
               Direction.INCOMING: bind(app.config.get("filter.incoming_listen"),
                                        "filter.incoming_listen")}
    metrics_socket = metrics_http.bind(app)  # served by the services process
    workers: set[int] = set()
    services: int | None = None
    stopping = False

    signals = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}

    def fork(child: Callable[[], None], what: str) -> int:
        """A child running ``child``; a signal that comes meanwhile waits until the child
        has its own handlers (it never runs the parent's)."""
        app.db.dispose()  # never share database connections across fork
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        pid = os.fork()
        if pid == 0:
            for sig in signals:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
            code = 0
            try:
                child()
            except BaseException:
                log.exception("event=%s_crashed", what)
                code = 1
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
        return pid

    def stop_if_stopping(pid: int) -> None:
        """A SIGTERM that came while ``pid`` was being made was not passed on to it."""
        if stopping:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def spawn_worker() -> None:
        def child() -> None:
            if metrics_socket is not None:
                metrics_socket.close()  # this process does not serve it
            asyncio.run(run(app, sockets, (Scope.WORKER,)))

        pid = fork(child, "worker")
        workers.add(pid)
        stop_if_stopping(pid)

    def spawn_services() -> None:
        nonlocal services

        def child() -> None:
            for sock in sockets.values():
                sock.close()  # this process does not serve SMTP
            serve_background(_fresh(app), metrics_socket)

        services = fork(child, "services")
        stop_if_stopping(services)

    def forward(sig: int, _frame: object) -> None:
        nonlocal stopping
        if sig in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if sig == signal.SIGINT else sig)
        if services is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(services, signal.SIGTERM)  # on SIGHUP: restarted below

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for _ in range(count):
        spawn_worker()
    spawn_services()
    log.info("event=workers_started count=%d services_pid=%s", count, services)
    while workers or services is not None:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == services:
            services = None
            if not stopping:
                log.info("event=services_restarting pid=%d status=%d", pid, status)
                time.sleep(0.5)
                spawn_services()
            continue
        workers.discard(pid)
        metrics.process_gone(pid)
        if not stopping:
            log.error("event=worker_died pid=%d status=%d; restarting", pid, status)
            time.sleep(0.5)
            spawn_worker()
    return 0


def _fresh(app: App) -> App:
    """The configuration as the file says now (the running one if it cannot be read).
    A daemon started without a file reads the default path again, as a worker's reload
    does: ``ie-config enable --mta exim`` may have created it since."""
    try:
        return create_app(app.config.path, clock=app.clock)
    except (IeError, SQLAlchemyError) as err:
        log.error("event=reload_failed error=%s", " ".join(str(err).split())[:300])
        return app


def setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    logging.getLogger("alembic").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ie-filterd", description=__doc__)
    parser.add_argument("--config", help="configuration file (default /etc/ie/ie.toml)")
    parser.add_argument("--init-db", action="store_true",
                        help="create or upgrade the database schema before starting")
    parser.add_argument("--pidfile", help="pid file (default ie.pid_file, else "
                        "/run/ie/ie-filterd.pid as root, DATA_DIR/ie-filterd.pid otherwise)")
    args = parser.parse_args(argv)
    try:
        app = create_app(args.config)
        setup_logging(app.config.get("ie.log_level"))
        if args.init_db:
            migrate.upgrade(app.db, hooks=app.hooks)
        migrate.check(app.db, hooks=app.hooks)
        app.check_pipeline()
        for key in ("filter.outgoing_listen", "filter.incoming_listen", "filter.reinject",
                    "filter.incoming_reinject", "filter.metrics_listen"):
            if app.config.get(key):
                parse_hostport(app.config.get(key), key)
        pid_path = Path(args.pidfile) if args.pidfile else pidfile.default_path(app)
        pidfile.claim(pid_path)
    except (IeError, OSError) as err:
        print(f"ie-filterd: {err}", file=sys.stderr)
        return 2
    except SQLAlchemyError as err:  # unreachable server, malformed ie.database_url...
        print(f"ie-filterd: {describe_error(err)}", file=sys.stderr)
        return 2
    try:
        workers = app.config.get("filter.workers") or os.cpu_count() or 1
        shared = workers > 1 and bool(app.config.get("filter.metrics_listen"))
        metrics.use_directory(app.data_dir / "metrics" if shared else None)  # before forking
        if workers > 1:
            return run_workers(app, workers)
        asyncio.run(run(app))
    except OSError as err:
        print(f"ie-filterd: cannot listen: {err}", file=sys.stderr)
        return 2
    finally:
        pidfile.release(pid_path)
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
