"""An MTA retry of a message ie already delivered or held (same queue id, same bytes:
what happens after a crash between the downstream's 250 and ie's) is answered 250 and
neither sent nor held again; anything else goes through as usual."""

from __future__ import annotations

import logging
import smtplib
import sqlite3
import time

from sqlalchemy import func, select

from ie_core.db.models import MessageLog
from tests.fixtures import winexec_messages as m

TOP = (b"Received: from web1.example.com (web1.example.com [192.0.2.7])\r\n"
       b"\tby mx.example.com (Postfix) with ESMTPSA id 4QxYz1AbCdE\r\n"
       b"\tfor <bob@example.org>; Sat,  5 Dec 2026 01:00:00 +0000 (UTC)\r\n")
MSG = TOP + (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: once\r\n"
             b"Message-ID: <once@example.com>\r\n\r\nOnly once, please.\r\n")


def send(port: int, raw: bytes) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo()
        s.mail("alice@example.com")
        s.rcpt("bob@example.org")
        code, reply = s.data(raw)
    return code, reply.decode()


def test_a_retry_of_a_delivered_message_is_not_sent_again(run_daemon, sink, db_url, caplog):
    d = run_daemon(db_url=db_url)
    code, first = send(d.outgoing_port, MSG)
    assert code == 250 and "delivered as " in first
    earlier = first.rsplit("delivered as ", 1)[1].strip()
    with caplog.at_level(logging.INFO, logger="ie.filter"):
        code, again = send(d.outgoing_port, MSG)
    assert code == 250 and f"delivered as {earlier} (duplicate not sent again)" in again
    time.sleep(0.5)
    assert len(sink.messages) == 1
    assert any("event=duplicate_suppressed queue_id=4QxYz1AbCdE" in r.getMessage()
               and f"earlier={earlier}" in r.getMessage() for r in caplog.records)
    with d.app.db.session() as s:  # the retry wrote no row and charged nothing
        assert s.scalar(select(func.count()).select_from(MessageLog)) == 1


def test_other_bytes_or_no_queue_id_go_through_again(run_daemon, sink, db_url):
    d = run_daemon(db_url=db_url)
    assert "delivered as " in send(d.outgoing_port, MSG)[1]
    changed = MSG.replace(b"Only once", b"Another one")  # same queue id, other message
    assert "delivered as " in send(d.outgoing_port, changed)[1]
    plain = MSG[len(TOP):]
    assert "delivered as " in send(d.outgoing_port, plain)[1]
    assert "delivered as " in send(d.outgoing_port, plain)[1]
    assert len(sink.wait_for(4)) == 4


def test_the_same_queue_file_for_other_recipients_is_delivered(run_daemon, sink, db_url):
    """An MTA splits a message with many recipients into several transactions of one
    queue file (same queue id, same bytes): each is delivered, only a retry of a
    transaction whose recipients were all delivered is suppressed."""
    d = run_daemon(db_url=db_url)

    def send_to(*rcpts: str) -> str:
        with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=30) as s:
            s.ehlo()
            s.mail("alice@example.com")
            for rcpt in rcpts:
                s.rcpt(rcpt)
            return s.data(MSG)[1].decode()

    assert "delivered as " in send_to("a@example.org", "b@example.org")
    second = send_to("c@example.org")
    assert "duplicate" not in second and "delivered as " in second
    assert "duplicate not sent again" in send_to("b@example.org")
    assert [m.rcpt_tos for m in sink.wait_for(2)] == [["a@example.org", "b@example.org"],
                                                      ["c@example.org"]]


def test_the_lookup_does_not_wait_for_the_sqlite_write_lock(make_app, tmp_path):
    from datetime import UTC, datetime

    from ie_core import Direction, MessageContext
    from ie_core.processor import look_up

    app = make_app()
    ctx = MessageContext(Direction.OUTGOING, MSG, "alice@example.com", ["bob@example.org"],
                         datetime.now(UTC))
    ctx.queue_id = "4QxYz1AbCdE"
    with app.db.session() as s:
        s.add(MessageLog(id="earlier", queue_id=ctx.queue_id, direction="outgoing",
                         received_at=ctx.received_at, mail_from=ctx.mail_from,
                         rcpt_tos=ctx.rcpt_tos, size=len(MSG), account="root",
                         action="deliver", outcome="delivered", reasons=[],
                         digest=ctx.digest))
    writer = sqlite3.connect(tmp_path / "data" / "ie.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another transaction holds the write lock
    try:
        reply, refreshed = look_up(app, ctx)  # change counters and the log, one connection
        assert str(reply) == "250 2.0.0 Ok: delivered as earlier (duplicate not sent again)"
        assert refreshed
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_retry_of_a_held_message_is_not_held_twice(run_daemon, sink, db_url):
    d = run_daemon(db_url=db_url, **{"pipeline.outgoing": ["winexec"]})
    raw = TOP + m.mail(("invoice.pdf", m.pe_file(), "application/pdf"))
    code, first = send(d.outgoing_port, raw)
    assert code == 250 and "held as " in first
    held = first.rsplit("held as ", 1)[1].strip()
    code, again = send(d.outgoing_port, raw)
    assert code == 250 and f"held as {held} (duplicate not held again)" in again
    with d.app.db.session() as s:
        assert s.scalars(select(MessageLog.outcome)).all() == [f"held:{held}"]
    assert sink.messages == []


def test_a_window_of_zero_turns_suppression_off(run_daemon, sink):
    d = run_daemon(**{"filter.duplicate_window": 0})
    send(d.outgoing_port, MSG)
    send(d.outgoing_port, MSG)
    assert len(sink.wait_for(2)) == 2


def test_a_deleted_database_file_is_never_written_into(run_daemon, sink, tmp_path, caplog):
    d = run_daemon(**{"pipeline.outgoing": ["winexec"]})
    raw = m.mail(("invoice.pdf", m.pe_file(), "application/pdf"))
    assert "held as " in send(d.outgoing_port, raw)[1]
    db_file = tmp_path / "data" / "ie.db"
    for suffix in ("", "-wal", "-shm"):
        db_file.with_name(db_file.name + suffix).unlink(missing_ok=True)
    with caplog.at_level(logging.ERROR, logger="ie.db"):
        for _ in range(2):
            code, reply = send(d.outgoing_port, raw)
            assert code == 451, reply  # the MTA keeps the message
    gone = [r for r in caplog.records if "event=database_gone" in r.getMessage()]
    assert len(gone) == 1
    db_file.write_bytes(b"")  # a new file under the old name is not the one opened either
    assert send(d.outgoing_port, raw)[0] == 451
