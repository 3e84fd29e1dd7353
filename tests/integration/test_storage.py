"""Storage on SQLite and PostgreSQL: migrations both ways, a previous release's database
upgraded, the message log, settings, the events outbox and its wake-ups."""

from __future__ import annotations

import smtplib
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, inspect, select, text

from ie_core.db import Database, migrate
from ie_core.db.models import EventCursor, MessageLog
from ie_core.events import Subscriber, WakePublisher, emit
from ie_core.pluginmanager import Hooks, make_plugin_manager
from tests.conftest import PG_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db(request, tmp_path):
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'm.db'}")
        yield db
        db.dispose()
        return
    name = f"ie_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
    yield db
    db.dispose()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_downgrade_upgrade(fresh_db):
    with pytest.raises(Exception, match="ie-config db upgrade"):
        migrate.check(fresh_db)
    migrate.upgrade(fresh_db)
    migrate.check(fresh_db)
    tables = set(inspect(fresh_db.engine).get_table_names())
    assert {"message_log", "accounts", "domain_map", "settings", "events"} <= tables
    migrate.downgrade(fresh_db, "base")
    assert set(inspect(fresh_db.engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(fresh_db)
    migrate.check(fresh_db)


DUMPS = Path(__file__).resolve().parents[1] / "fixtures" / "release_db"
PLUGIN_HEADS = {"0002_quarantine", "0003_ratelimit", "0004_bayes", "0005_incoming",
                "0006_notify", "0007_whitelist"}
RELEASE_HEADS = {*PLUGIN_HEADS, "0008_message_log_digest"}


def load_dump(db: Database, name: str) -> None:
    """A database made by an earlier release, every revision then in core's folder:

    - ``ie-0.1.0``: release 0.1.0's ``ie-config db upgrade``, ``ie-cli whitelist sender add
      partner.example`` and ``ie-cli am server-settings set --account 200``;
    - ``pre-0008``: the same with the code before the message-log digest (a16deab, core at
      0001_core, every plugin branch at its head), then one message through that code's
      ``processor.analyse`` and ``processor.record`` (a message-log row, send counts).
    """
    if db.url.startswith("sqlite"):
        with sqlite3.connect(db.url.split("///", 1)[1]) as con:
            con.executescript((DUMPS / f"{name}.sqlite.sql").read_text())
        return
    with psycopg.connect(db.url.replace("postgresql+psycopg", "postgresql"),
                         autocommit=True) as conn:
        conn.execute((DUMPS / f"{name}.postgresql.sql").read_text().encode())


def load_release_dump(db: Database) -> None:
    load_dump(db, "ie-0.1.0")


def test_a_previous_release_database_upgrades_and_keeps_its_data(fresh_db):
    load_release_dump(fresh_db)
    assert migrate.current_heads(fresh_db) == RELEASE_HEADS
    migrate.upgrade(fresh_db)
    migrate.check(fresh_db)
    assert migrate.current_heads(fresh_db) == migrate.wanted_heads(fresh_db)
    with fresh_db.engine.connect() as conn:
        entries = conn.execute(text("SELECT kind, value FROM whitelist_entries")).all()
        settings = dict(conn.execute(text("SELECT key, value FROM settings")).all())
    assert [tuple(e) for e in entries] == [("sender", "partner.example")]
    assert settings == {"ratelimit.server.account": 200}


def test_a_database_stopped_at_an_older_revision_upgrades_and_keeps_its_rows(fresh_db):
    load_dump(fresh_db, "pre-0008")
    assert migrate.current_heads(fresh_db) == PLUGIN_HEADS
    with pytest.raises(migrate.SchemaBehindError, match="behind"):
        migrate.check(fresh_db)
    migrate.upgrade(fresh_db)
    migrate.check(fresh_db)
    assert migrate.current_heads(fresh_db) == (
        RELEASE_HEADS - {"0003_ratelimit", "0005_incoming", "0002_quarantine", "0006_notify",
                         "0008_message_log_digest"}) | {
        "0012_ratelimit_window_oldest", "0005_incoming_greylist", "0010_blocklist", "0010_web",
        "0014_quarantine_filter_index", "0010_notify_held_direction",
        "0011_core_change_counters"}
    with fresh_db.engine.connect() as conn:
        logged = conn.execute(text("SELECT queue_id, account, outcome, digest "
                                   "FROM message_log")).all()
        sends = conn.execute(text("SELECT count(*) FROM ratelimit_sends")).scalar_one()
        objects = conn.execute(text("SELECT so_type, name, window_at FROM ratelimit_objects "
                                    "ORDER BY so_type")).all()
        entries = conn.execute(text("SELECT kind, value FROM whitelist_entries")).all()
    assert [tuple(r) for r in logged] == [("4QX1Y2", "root", "delivered", None)]
    assert sends == 3
    assert [tuple(o) for o in objects] == [("account", "root", None),
                                           ("domain", "example.com", None),
                                           ("sender_email", "alice@example.com", None)]
    assert [tuple(e) for e in entries] == [("sender", "partner.example")]
    indexes = {i["name"] for i in inspect(fresh_db.engine).get_indexes("message_log")}
    assert "ix_message_log_queue_id" in indexes


def test_a_disabled_plugins_tables_are_not_created_until_it_is_enabled(fresh_db):
    enabled = Hooks(make_plugin_manager())
    without_whitelist = Hooks(make_plugin_manager(disabled=["whitelist"]))
    migrate.upgrade(fresh_db, hooks=without_whitelist)
    assert "whitelist_entries" not in inspect(fresh_db.engine).get_table_names()
    assert "0007_whitelist" not in migrate.current_heads(fresh_db)
    migrate.check(fresh_db, hooks=without_whitelist)
    with pytest.raises(migrate.SchemaBehindError, match="0007_whitelist"):
        migrate.check(fresh_db, hooks=enabled)  # enabled again: its branch is wanted
    migrate.upgrade(fresh_db, hooks=enabled)
    assert "whitelist_entries" in inspect(fresh_db.engine).get_table_names()
    migrate.check(fresh_db, hooks=without_whitelist)  # disabled again: its rows stay known
    migrate.upgrade(fresh_db, hooks=without_whitelist)
    assert migrate.current_heads(fresh_db) == migrate.wanted_heads(fresh_db, enabled)


def test_a_revision_of_an_uninstalled_plugin_is_named_not_a_traceback(fresh_db):
    load_release_dump(fresh_db)
    with fresh_db.engine.begin() as conn:
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('gone_0001')"))
    with pytest.raises(migrate.SchemaBehindError, match="no installed plugin provides: "
                                                        "gone_0001"):
        migrate.upgrade(fresh_db)
    with pytest.raises(migrate.SchemaBehindError, match="gone_0001"):
        migrate.check(fresh_db)


def test_message_log_row_per_message(run_daemon, sink, db_url):
    d = run_daemon(db_url=db_url)
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
        s.sendmail("Alice@Example.COM", ["b@example.org", "c@example.org"],
                   b"Subject: x\r\n\r\nbody\r\n")
    sink.wait_for(1)
    with d.app.db.session() as s:
        [row] = s.scalars(select(MessageLog)).all()
    assert row.outcome == "delivered" and row.action == "deliver"
    assert row.rcpt_tos == ["b@example.org", "c@example.org"]
    assert row.sender_email == "alice@example.com" and row.domain == "example.com"
    assert row.account == "root" and row.direction == "outgoing"


def test_runtime_settings_round_trip(make_app, db_url):
    app = make_app(db_url=db_url)
    assert app.settings.get("x.y", 5) == 5
    app.settings.set("x.y", {"a": [1, 2]})
    assert app.settings.get("x.y") == {"a": [1, 2]}
    app.settings.set("x.y", None)
    assert app.settings.get("x.y", "gone") == "gone"


def test_outbox_events_commit_with_the_change_and_subscribers_catch_up(make_app, db_url):
    app = make_app(db_url=db_url)
    with app.db.session() as s:
        emit(s, app.clock, "held", "acct", {"id": "1"})
    with pytest.raises(RuntimeError), app.db.session() as s:
        emit(s, app.clock, "held", "acct", {"id": "never"})  # rolled back with the change
        raise RuntimeError
    with app.db.session() as s:
        emit(s, app.clock, "released", "acct", {"id": "1"})
    seen: list[str] = []
    sub = Subscriber(app.db, "test", app.wake_endpoint, poll_interval=0.1)
    assert sub.catch_up(lambda e: seen.append(e.kind)) == 2
    assert seen == ["held", "released"]
    assert sub.catch_up(lambda e: seen.append(e.kind)) == 0  # cursor advanced
    with app.db.session() as s:
        assert s.get(EventCursor, "test").last_id >= 2


def test_a_failing_handler_sees_the_event_again(make_app, db_url):
    app = make_app(db_url=db_url)
    with app.db.session() as s:
        emit(s, app.clock, "held", None, {})
    sub = Subscriber(app.db, "flaky", app.wake_endpoint, poll_interval=0.1)

    def fail(event):
        raise OSError("smtp down")
    with pytest.raises(OSError):
        sub.catch_up(fail)
    assert sub.catch_up(lambda e: None) == 1


def test_wakeup_reaches_a_running_subscriber_quickly(make_app, tmp_path):
    app = make_app(**{"events.wake_endpoint": f"ipc://{tmp_path}/wake.ipc"})
    seen: list[float] = []
    sub = Subscriber(app.db, "fast", app.wake_endpoint, poll_interval=30)  # no polling help
    t = threading.Thread(target=sub.run, args=(lambda e: seen.append(time.monotonic()),),
                         daemon=True)
    t.start()
    time.sleep(0.3)
    pub = WakePublisher(app.wake_endpoint)
    pub.wake()  # connect
    time.sleep(0.3)
    with app.db.session() as s:
        emit(s, app.clock, "held", None, {})
    sent = time.monotonic()
    pub.wake()
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    sub.stop()
    pub.wake()
    t.join(40)
    pub.close()
    assert seen and seen[0] - sent < 2.0
