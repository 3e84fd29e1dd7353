"""Issue 14, defect 1: at 32 concurrent clients on PostgreSQL, with mail held for another
reason (recorded as quarantined) mixed with mail the send limits admit, every path that
writes send rows locks the sender objects in the same (id) order first, so no transaction
deadlocks and no message gets a 451."""

from __future__ import annotations

import smtplib
import threading
from collections import Counter

import pytest

from ie_core import Action, Finding, Stage, hookimpl
from ie_plugins.ratelimit.limits import save_server_settings

CLIENTS = 32
PER_CLIENT = 20


class HoldMarked:
    @hookimpl
    def ie_stages(self, app):
        def run(ctx):
            if b"HOLD-ME" in ctx.raw:
                return Finding(stage="spamcheck", reason="spam", action=Action.QUARANTINE)
            return None
        return [Stage(name="spamcheck", run=run, priority=400)]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_mixed_held_and_admitted_mail_at_32_clients_never_tempfails(run_daemon, sink, db_url):
    d = run_daemon(db_url=db_url, plugins=[("hold", HoldMarked())],
                   **{"pipeline.outgoing": ["spamcheck", "ratelimit"],
                      "quarantine.cli_socket": "", "filter.max_concurrent": CLIENTS})
    save_server_settings(d.app, {"account": 100_000, "domain": 100_000,
                                 "sender_email": 100_000})
    replies: Counter = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client(i: int) -> None:
        barrier.wait(30)
        with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=60) as s:
            s.ehlo()
            for n in range(PER_CLIENT):
                body = b"HOLD-ME\r\n" if (i + n) % 2 else b"plain\r\n"
                s.mail("bob@example.com")
                s.rcpt(f"r{i}-{n}@example.org")
                code, text = s.data(b"From: bob@example.com\r\nSubject: s\r\n\r\n" + body)
                with lock:
                    replies[(code, b"held as" in text)] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    half = CLIENTS * PER_CLIENT // 2
    assert replies == {(250, True): half, (250, False): half}
