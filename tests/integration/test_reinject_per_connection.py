"""A reinjection connection carries at most ``filter.reinject_max_per_connection``
messages, then a new one is opened (Exim would queue the 11th message on a connection
instead of delivering it)."""

from __future__ import annotations

import smtplib
from itertools import groupby

from ie_core.smtp.reinject import Reinjector
from tests.fixtures.sink import Sink

MSG = b"From: a@example.com\r\nSubject: hello\r\n\r\nHello.\r\n"


def messages_per_connection(sink: Sink, count: int) -> list[int]:
    """How many of the sink's messages each connection carried, in arrival order."""
    return [len(list(group)) for _, group in groupby(m.peer for m in sink.wait_for(count))]


def reinject(sink: Sink, count: int, **options: int) -> list[int]:
    r = Reinjector("127.0.0.1", sink.port, timeout=5.0, idle=30.0, helo="ie.test", **options)
    try:
        for i in range(count):
            assert r.send("a@example.com", [f"r{i}@example.org"], MSG).ok
    finally:
        r.close()
    return messages_per_connection(sink, count)


def test_ten_messages_per_connection_by_default(sink):
    assert reinject(sink, 23) == [10, 10, 3]


def test_zero_means_no_limit(sink):
    assert reinject(sink, 23, max_per_connection=0) == [23]


def test_the_daemon_reads_the_limit_from_its_configuration(run_daemon, sink):
    d = run_daemon(**{"filter.reinject_max_per_connection": 2})
    for i in range(5):
        with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
            s.sendmail("a@example.com", [f"r{i}@example.org"], MSG)
    assert messages_per_connection(sink, 5) == [2, 2, 1]
