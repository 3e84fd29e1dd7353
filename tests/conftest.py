"""Fixtures shared by every test.

Database tests take the ``db_url`` fixture, parametrised over SQLite and PostgreSQL
(127.0.0.1:5432, trust auth; ``.ci/run`` makes sure it runs).  PostgreSQL gets one fresh
database per test session, migrated once, and every table is emptied after each test.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from ie_core import App, ManualClock, create_app
from ie_core.daemon import FilterDaemon
from ie_core.db import migrate
from ie_core.db.base import Base
from tests.fixtures.daemon import wait_for_cli_socket
from tests.fixtures.sink import Sink, free_port

PG_ADMIN_URL = os.environ.get("IE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that runs on PostgreSQL (a ``postgresql`` parameter of any fixture
    or parametrize) ``postgres``, so ``-m "not postgres"`` leaves the SQLite half."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "postgresql" in callspec.params.values():
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"ie_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as err:  # pragma: no cover - the CI starts PostgreSQL
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {err}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    from ie_core.db import Database

    db = Database(url)
    migrate.upgrade(db)
    db.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ie.db'}"
        return
    url = request.getfixturevalue("pg_database")
    yield url
    _empty_tables(url)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_app(tmp_path: Path, clock: ManualClock) -> Iterator[Callable[..., App]]:
    """``make_app(db_url=None, plugins=[(name, obj)], **{"section.key": value})``.

    Builds an App on a private data directory (SQLite there unless ``db_url`` is given),
    with the schema migrated and the test clock.
    """
    apps: list[App] = []

    def factory(db_url: str | None = None, plugins: list[tuple[str, object]] | None = None,
                config: Path | None = None, migrated: bool = True, **overrides: Any) -> App:
        values: dict[str, object] = {"ie.data_dir": str(tmp_path / "data")}
        if "quarantine" not in overrides.get("plugins.disabled", []):
            values["quarantine.cli_socket"] = str(tmp_path / "cli.sock")  # not /run/ie
        if db_url:
            values["ie.database_url"] = db_url
        values.update(overrides)
        if config is None:
            config = tmp_path / "ie.toml"
            config.touch()
        app = create_app(config, clock=clock, extra_plugins=plugins or [], overrides=values)
        if migrated:
            migrate.upgrade(app.db)
        apps.append(app)
        return app

    os.environ.pop("IE_CONFIG", None)
    yield factory
    for app in apps:
        app.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


class RunningDaemon:
    """ie-filterd's listeners on an event loop in a background thread."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.daemon = FilterDaemon(app)
        self.outgoing = app.config.get("filter.outgoing_listen")
        self.incoming = app.config.get("filter.incoming_listen")
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._error: BaseException | None = None

    @property
    def outgoing_port(self) -> int:
        return int(self.outgoing.rsplit(":", 1)[1])

    @property
    def incoming_port(self) -> int:
        return int(self.incoming.rsplit(":", 1)[1])

    def _main(self) -> None:
        async def go() -> None:
            try:
                await self.daemon.start(install_signals=False)
            except BaseException as err:
                self._error = err
                self._ready.set()
                raise
            self._ready.set()
            await self.daemon.serve_until_stopped()

        asyncio.run(go())

    def start(self) -> RunningDaemon:
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error
        if "quarantine" not in self.app.config.get("plugins.disabled"):
            wait_for_cli_socket(self.app.config.get("quarantine.cli_socket"))
        return self

    def stop(self) -> None:
        if self.daemon.loop is not None and self._thread.is_alive():
            self.daemon.loop.call_soon_threadsafe(self.daemon.request_stop)
        self._thread.join(30)


@pytest.fixture
def run_daemon(make_app: Callable[..., App], sink: Sink) -> Iterator[Callable[..., RunningDaemon]]:
    """``run_daemon(plugins=[...], **config)``: a daemon whose reinjection goes to ``sink``."""
    running: list[RunningDaemon] = []

    def start(**kwargs: Any) -> RunningDaemon:
        kwargs.setdefault("filter.outgoing_listen", f"127.0.0.1:{free_port()}")
        kwargs.setdefault("filter.incoming_listen", f"127.0.0.1:{free_port()}")
        kwargs.setdefault("filter.reinject", f"127.0.0.1:{sink.port}")
        kwargs.setdefault("filter.reinject_timeout", 5.0)
        kwargs.setdefault("filter.shutdown_grace", 5.0)
        kwargs.setdefault("filter.metrics_listen", "")  # tests that scrape pick a port
        d = RunningDaemon(make_app(**kwargs)).start()
        running.append(d)
        return d

    yield start
    for d in running:
        d.stop()
