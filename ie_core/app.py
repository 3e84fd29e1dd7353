"""The application object handed to plugins: configuration, database, clock, hooks."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from ie_core import config as cfg
from ie_core.changes import Cached, ChangeCounters
from ie_core.clock import Clock, SystemClock
from ie_core.db.session import Database, ensure_private
from ie_core.events import WakePublisher
from ie_core.pluginmanager import Hooks, make_plugin_manager
from ie_core.settings import RuntimeSettings
from ie_core.stages import Stage, order_stages
from ie_core.verdict import Direction

log = logging.getLogger("ie")
T = TypeVar("T")


class App:
    """One per process.  Built by :func:`create_app`; cheap until the database is used."""

    def __init__(self, config: cfg.Config, hooks: Hooks, clock: Clock) -> None:
        self.config = config
        self.hooks = hooks
        self.clock = clock
        self._stages: dict[Direction, list[Stage]] = {}
        self._cached: dict[str, Cached[Any]] = {}
        self._cached_lock = threading.Lock()
        self._database_shared = False

    @cached_property
    def data_dir(self) -> Path:
        path = self.config.data_dir
        ensure_private(path)
        return path

    @cached_property
    def db(self) -> Database:
        if not self.config.get("ie.database_url"):
            self.data_dir  # noqa: B018  (creates it, private)
        return Database(self.config.database_url)

    def share_database(self, db: Database) -> None:
        """Use ``db``, which another App owns (:meth:`close` leaves it open): a command
        ie-filterd runs uses the daemon's connection pool instead of opening its own."""
        self.__dict__["db"] = db
        self._database_shared = True

    @cached_property
    def changes(self) -> ChangeCounters:
        return ChangeCounters(self.db)

    def cached(self, counter: str, key: str, load: Callable[[], T]) -> T:
        """``load()``'s result, kept in this App under ``key`` and loaded again when the
        change counter ``counter`` moved (:mod:`ie_core.changes`; every write of the data
        must :func:`~ie_core.changes.bump` it)."""
        with self._cached_lock:
            cache = self._cached.get(key)
            if cache is None:
                cache = self._cached[key] = Cached(self.changes, counter, load)
        value: T = cache.get()
        return value

    @cached_property
    def settings(self) -> RuntimeSettings:
        return RuntimeSettings(self.db, self.clock, self.changes)

    @cached_property
    def wake_endpoint(self) -> str:
        return self.config.get("events.wake_endpoint") or f"ipc://{self.data_dir}/events.ipc"

    @cached_property
    def publisher(self) -> WakePublisher:
        return WakePublisher(self.wake_endpoint)

    @cached_property
    def hostname(self) -> str:
        return self.config.get("ie.hostname") or socket.getfqdn()

    def stages(self, direction: Direction) -> list[Stage]:
        """The ordered stages for ``direction``, worked out once per configuration (not
        per message); raises :class:`ConfigError` for an order naming unknown stages."""
        if direction not in self._stages:
            self._stages[direction] = order_stages(self.hooks.stages(self), direction,
                                                   self.config.get(f"pipeline.{direction}"))
        return self._stages[direction]

    def check_pipeline(self) -> None:
        """Work out both directions' stages now, so a bad order fails at start-up."""
        for direction in Direction:
            self.stages(direction)

    def reconfigure(self, config: cfg.Config, hooks: Hooks) -> None:
        """Take a re-read configuration (SIGHUP); the next message uses it."""
        self.config, self.hooks = config, hooks
        self._stages.clear()
        if "settings" in self.__dict__:
            self.settings.invalidate()

    def close(self) -> None:
        if "publisher" in self.__dict__:
            self.publisher.close()
        if "db" in self.__dict__ and not self._database_shared:
            self.db.dispose()


def create_app(config_path: str | os.PathLike[str] | None = None, *,
               clock: Clock | None = None,
               extra_plugins: Sequence[tuple[str, object]] = (),
               overrides: dict[str, object] | None = None) -> App:
    """Read the configuration, load the plugins and validate every key.

    ``overrides`` maps dotted keys to values that replace the file's (tests, command-line
    options such as ``--data-dir``).
    """
    path, required = cfg.resolve_path(config_path)
    raw = cfg.read_raw(path, required)
    for dotted, value in (overrides or {}).items():
        section, _, name = dotted.partition(".")
        raw.setdefault(section, {})[name] = value
    pm = make_plugin_manager(cfg.disabled_plugins(raw), extra_plugins)
    hooks = Hooks(pm)
    config = cfg.validate(raw, [*cfg.CORE_KEYS, *hooks.config_keys()],
                          path if path.exists() else None)
    return App(config, hooks, clock or SystemClock())
