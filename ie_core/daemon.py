"""``ie-filterd``: the two listeners, graceful SIGTERM, SIGHUP reload."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ie_core.app import App, create_app
from ie_core.config import parse_hostport
from ie_core.db import migrate
from ie_core.errors import IeError
from ie_core.smtp.reinject import Reinjector
from ie_core.smtp.server import FilterHandler, FilterSMTP
from ie_core.verdict import Direction

log = logging.getLogger("ie.daemon")


@dataclass
class Listener:
    direction: Direction
    handler: FilterHandler
    server: asyncio.AbstractServer


class FilterDaemon:
    """Runs the listeners on one asyncio loop; blocking work goes to ``executor``."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.listeners: list[Listener] = []
        self.executor = ThreadPoolExecutor(
            max_workers=max(2, 2 * app.config.get("filter.max_concurrent")),
            thread_name_prefix="ie-worker")
        self._stopping = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._reinjectors: list[Reinjector] = []

    def _reinjector(self, setting: str) -> Reinjector:
        host, port = parse_hostport(self.app.config.get(setting), setting)
        r = Reinjector(host, port, timeout=self.app.config.get("filter.reinject_timeout"),
                       idle=self.app.config.get("filter.reinject_idle"), helo=self.app.hostname)
        self._reinjectors.append(r)
        return r

    async def start(self, install_signals: bool = True) -> None:
        loop = self.loop = asyncio.get_running_loop()
        out_reinject = self._reinjector("filter.reinject")
        in_reinject = (self._reinjector("filter.incoming_reinject")
                       if self.app.config.get("filter.incoming_reinject") else out_reinject)
        for direction, listen, reinjector in (
                (Direction.OUTGOING, "filter.outgoing_listen", out_reinject),
                (Direction.INCOMING, "filter.incoming_listen", in_reinject)):
            host, port = parse_hostport(self.app.config.get(listen), listen)
            handler = FilterHandler(self.app, direction, reinjector, self.executor)
            server = await loop.create_server(
                lambda h=handler: FilterSMTP(  # type: ignore[misc]
                    h, data_size_limit=self.app.config.get("filter.max_message_size"),
                    enable_SMTPUTF8=True, hostname=self.app.hostname,
                    ident="ie-filterd", timeout=300),
                host=host, port=port, reuse_address=True)
            self.listeners.append(Listener(direction, handler, server))
            log.info("event=listening direction=%s address=%s:%d", direction, host, port)
        if install_signals:
            for sig, fn in ((signal.SIGTERM, self.request_stop),
                            (signal.SIGINT, self.request_stop), (signal.SIGHUP, self.reload)):
                loop.add_signal_handler(sig, fn)
        self.app.hooks.startup(self.app)

    def request_stop(self) -> None:
        log.info("event=stopping")
        self._stopping.set()

    def reload(self) -> None:
        """SIGHUP: re-read the file; the new configuration applies to the next message."""
        try:
            new = create_app(self.app.config.path, clock=self.app.clock)
        except IeError as err:
            log.error("event=reload_failed error=%s", err)
            return
        self.app.config = new.config
        self.app.hooks = new.hooks
        self.app.settings.invalidate()
        log.info("event=reloaded config=%s", self.app.config.path or "(defaults)")

    async def serve_until_stopped(self) -> None:
        await self._stopping.wait()
        for listener in self.listeners:
            listener.server.close()  # stop accepting; sessions already open go on
        grace = self.app.config.get("filter.shutdown_grace")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(l.handler.in_flight for l in self.listeners) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        left = sum(l.handler.in_flight for l in self.listeners)
        if left:
            log.warning("event=shutdown_with_messages_in_flight count=%d", left)
        self.app.hooks.shutdown(self.app)
        for r in self._reinjectors:
            r.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.info("event=stopped")


async def run(app: App) -> None:
    daemon = FilterDaemon(app)
    await daemon.start()
    await daemon.serve_until_stopped()


def setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ie-filterd", description=__doc__)
    parser.add_argument("--config", help="configuration file (default /etc/ie/ie.toml)")
    parser.add_argument("--init-db", action="store_true",
                        help="create or upgrade the database schema before starting")
    args = parser.parse_args(argv)
    try:
        app = create_app(args.config)
        setup_logging(app.config.get("ie.log_level"))
        if args.init_db:
            migrate.upgrade(app.db)
        migrate.check(app.db)
    except IeError as err:
        print(f"ie-filterd: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"ie-filterd: {err}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(app))
    except OSError as err:
        print(f"ie-filterd: cannot listen: {err}", file=sys.stderr)
        return 2
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
