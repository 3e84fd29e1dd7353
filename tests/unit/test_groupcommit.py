"""Group commit: concurrent per-message writes share transactions, each caller is told
only after the commit, a failing piece of work fails alone, locks are taken in order."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import event, func, select

from ie_core.db import Database
from ie_core.db.groupcommit import GroupCommit
from ie_core.db.models import MessageLog
from tests.fixtures.groupcommit import queued_behind_a_slow_one


def log_row(message_id: str, app) -> MessageLog:
    return MessageLog(id=message_id, queue_id=None, direction="outgoing",
                      received_at=app.clock.now(), mail_from="a@example.com",
                      rcpt_tos=["b@example.org"], size=1, account="root", action="deliver",
                      outcome="delivered", reasons=[], score=0.0, duration_ms=1)


def rows(db: Database) -> int:
    with db.reading() as s:
        return s.scalar(select(func.count()).select_from(MessageLog)) or 0


@pytest.fixture
def db(make_app, db_url):
    app = make_app(db_url=db_url)
    return app


def test_concurrent_writes_share_transactions_and_all_commit(db):
    app = db
    commits = []
    event.listen(app.db.engine, "commit", lambda conn: commits.append(1))

    def slow(gate):  # holds the writer while the others queue behind it
        app.db.group.run(lambda s: (gate.wait(5), s.add(log_row(str(uuid.uuid4()), app))))

    queued_behind_a_slow_one(slow, [
        lambda: app.db.group.run(lambda s: s.add(log_row(str(uuid.uuid4()), app)))
        for _ in range(20)])
    assert rows(app.db) == 21
    assert len(commits) == 2  # the slow one alone, then the twenty queued together


def test_the_caller_returns_only_once_its_write_is_committed(db):
    app = db
    message_id = str(uuid.uuid4())
    result = app.db.group.run(lambda s: (s.add(log_row(message_id, app)), 42)[1])
    assert result == 42
    other = Database(app.db.url)  # another connection, as another process would have
    try:
        with other.reading() as s:
            assert s.get(MessageLog, message_id) is not None
    finally:
        other.dispose()


def test_a_failing_piece_of_work_fails_alone(db):
    app = db
    outcomes: dict[str, object] = {}

    def run(name, work):
        try:
            outcomes[name] = app.db.group.run(work)
        except Exception as err:  # noqa: BLE001 - the test looks at it
            outcomes[name] = err

    def fine(name):
        return lambda s: (s.add(log_row(str(uuid.uuid4()), app)), name)[-1]

    def bad(s):
        s.add(log_row(str(uuid.uuid4()), app))
        raise ValueError("this one is broken")

    queued_behind_a_slow_one(
        lambda gate: run("slow", lambda s: (gate.wait(5), fine("slow")(s))[-1]),
        [lambda: run("a", fine("a")), lambda: run("bad", bad), lambda: run("b", fine("b"))])
    assert outcomes["slow"] == "slow" and outcomes["a"] == "a" and outcomes["b"] == "b"
    assert isinstance(outcomes["bad"], ValueError)
    assert rows(app.db) == 3  # the broken one's row was rolled back


def test_a_failed_commit_fails_every_caller_of_the_batch_and_writes_nothing(db):
    app = db

    def refuse(conn):
        raise RuntimeError("disk full")

    event.listen(app.db.engine, "commit", refuse)
    with pytest.raises(RuntimeError, match="disk full"):
        app.db.group.run(lambda s: s.add(log_row(str(uuid.uuid4()), app)))
    event.remove(app.db.engine, "commit", refuse)
    assert rows(app.db) == 0
    app.db.group.run(lambda s: s.add(log_row(str(uuid.uuid4()), app)))
    assert rows(app.db) == 1


def test_the_rows_of_a_batch_are_locked_once_in_id_order_before_any_work_runs():
    calls: list[tuple[str, list[str]]] = []
    db = Database("sqlite://")
    group = GroupCommit(db)
    group.register_lock("things", lambda s, ids: calls.append(("lock", ids)))
    queued_behind_a_slow_one(
        lambda gate: group.run(lambda s: gate.wait(5), locks={"things": ["m"]}),
        [lambda ids=ids: group.run(lambda s: calls.append(("work", ids)),
                                   locks={"things": ids})
         for ids in (["z", "b"], ["c", "b"], ["a"])])
    group.close()
    db.dispose()
    assert calls[0] == ("lock", ["m"])
    assert calls[1] == ("lock", ["a", "b", "c", "z"])
    assert sorted(c[1] for c in calls[2:]) == [["a"], ["c", "b"], ["z", "b"]]
    assert all(c[0] == "work" for c in calls[2:])


def test_an_unknown_lock_kind_is_refused_before_anything_runs():
    db = Database("sqlite://")
    group = GroupCommit(db)
    ran = []
    with pytest.raises(KeyError):
        group.run(lambda s: ran.append(1), locks={"nobody": ["x"]})
    assert ran == []
    db.dispose()


def test_a_writer_that_keeps_its_turn_makes_the_others_give_up_not_wait_for_ever(tmp_path):
    import fcntl
    import os

    from ie_core.db.session import DatabaseBusy

    db = Database(f"sqlite:///{tmp_path / 'ie.db'}")
    other = os.open(f"{tmp_path / 'ie.db'}-writer", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(other, fcntl.LOCK_EX)  # another worker, stopped in the middle of its batch
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseBusy), db.writer_turn(timeout=0.3):
            pass
        assert 0.3 <= time.monotonic() - started < 5
    finally:
        os.close(other)
    with db.writer_turn(timeout=0.3):  # free again: the turn comes at once
        pass
    db.dispose()
