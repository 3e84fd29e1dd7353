#!/usr/bin/env python3
"""How fast ie-web's pages answer with many held messages (default 100,000).

Fills a fresh database (SQLite in a temporary folder, or ``--db-url`` for PostgreSQL: it
must be an empty, dedicated database) with held messages spread over 200 accounts and
30 days, and 20,000 history rows, then asks each page ``--runs`` times through the ASGI
application (Starlette's test client: the whole application, without the network) as
the admin and as one owner, and prints the median and slowest time per page in
milliseconds.  Issue 15 asks for every page under 300 ms.

Run: ``.venv/bin/python bench/web_pages.py [--messages 100000] [--db-url URL]``
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from starlette.testclient import TestClient

from ie_core import create_app
from ie_core.db import migrate
from ie_core.db.models import MessageLog
from ie_plugins.incoming.models import IncomingDaily
from ie_plugins.quarantine.models import HeldMessage, QuarantineLog
from ie_plugins.ratelimit.models import SenderObject, SendRecord
from ie_plugins.web import credentials
from ie_plugins.web.app import create_web_app
from ie_plugins.web.signing import login_token

REASONS = (["spam"], ["winexec"], ["ratelimit"], ["blocked"], ["spam", "ratelimit"])
PASSWORD = "bench password 1"


def fill(app, messages: int) -> tuple[str, str]:
    """Insert the rows; return a held id of account ``acct7`` and one of ``acct8``."""
    now = datetime.now(UTC)
    store = app.data_dir / "quarantine"
    store.mkdir(parents=True, exist_ok=True)
    ids: list[str] = []
    batch: list[dict] = []
    with app.db.session() as s:
        for n in range(messages):
            held_id = str(uuid.uuid4())
            reasons = REASONS[n % len(REASONS)]
            at = now - timedelta(seconds=n * 30 * 86400 // messages)
            batch.append({
                "id": held_id, "account": f"acct{n % 200}", "state": "held",
                "received_at": at, "quarantined_at": at,
                "mail_from": f"sender{n % 5000}@site{n % 200}.example",
                "rcpt_tos": [f"rcpt{n % 9000}@example.org"], "header_from": "Sender <s@x>",
                "subject": f"Offer number {n}", "size": 2000 + n % 5000,
                "reasons": reasons, "reasons_key": "," + ",".join(reasons) + ",",
                "score": 12.0, "claim_limited": False})
            if n in (7, 8):  # the first messages of acct7 and acct8
                ids.append(held_id)
            if len(batch) == 5000:
                s.execute(insert(HeldMessage), batch)
                batch.clear()
        if batch:
            s.execute(insert(HeldMessage), batch)
        s.execute(insert(QuarantineLog), [{
            "message_id": str(uuid.uuid4()), "account": f"acct{n % 200}",
            "action": "released" if n % 2 else "deleted", "actor": "root",
            "at": now - timedelta(seconds=n * 60), "limited": False,
            "mail_from": "s@x.example", "rcpt_tos": ["r@example.org"], "subject": "old",
            "size": 1000, "reasons": ["spam"], "quarantined_at": now} for n in range(20000)])
    fill_activity(app, messages, now)
    raw = b"From: s@x\r\nTo: r@example.org\r\nSubject: Offer\r\n\r\nHello.\r\n"
    for held_id in ids:
        (store / held_id).write_bytes(raw)
    return ids[0], ids[1]


def fill_activity(app, messages: int, now: datetime) -> None:
    """What the Activity Monitor and Statistics read: a message-log row per message
    (``messages`` more delivered than held) over 30 days, incoming counters per account
    and day, and 200 accounts x 5 domains x 10 sender addresses that each sent twice in
    the last hour."""
    with app.db.session() as s:
        for start in range(0, 2 * messages, 10000):
            s.execute(insert(MessageLog), [{
                "id": str(uuid.uuid4()), "queue_id": None, "direction": "outgoing",
                "received_at": now - timedelta(seconds=n * 15 * 86400 // messages),
                "mail_from": "s@x.example", "rcpt_tos": ["r@example.org"], "size": 1000,
                "account": f"acct{n % 200}", "domain": None, "sender_email": None,
                "script": None, "action": "deliver", "reasons": [], "score": 0.0,
                "outcome": "delivered" if n % 2 else "held:x", "digest": None}
                for n in range(start, min(start + 10000, 2 * messages))])
        s.execute(insert(IncomingDaily), [{
            "day": (now - timedelta(days=d)).date(), "account": f"acct{a}", "spam": a % 7,
            "legitimate": 20 + a % 11, "unfiltered": 1} for d in range(30) for a in range(200)])
        objects, sends = [], []
        for a in range(200):
            acc = str(uuid.uuid4())
            objects.append({"id": acc, "so_type": "account", "name": f"acct{a}",
                            "parent_id": None, "created_at": now})
            for d in range(5):
                dom = str(uuid.uuid4())
                objects.append({"id": dom, "so_type": "domain", "name": f"d{d}.site{a}.example",
                                "parent_id": acc, "created_at": now})
                for e in range(10):
                    snd = str(uuid.uuid4())
                    objects.append({"id": snd, "so_type": "sender_email",
                                    "name": f"u{e}@d{d}.site{a}.example", "parent_id": dom,
                                    "created_at": now})
                    for k in range(2):
                        message = str(uuid.uuid4())
                        for oid in (acc, dom, snd):
                            sends.append({"object_id": oid, "message_id": message,
                                          "at": now - timedelta(minutes=5 + k),
                                          "outcome": "sent", "recipients": 1})
        s.execute(insert(SenderObject), objects)
        for start in range(0, len(sends), 10000):
            s.execute(insert(SendRecord), sends[start:start + 10000])


def client(app, name: str | None) -> TestClient:
    c = TestClient(create_web_app(app), follow_redirects=True)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    if name is None:
        c.post("/login", data={"name": "root", "password": PASSWORD, "csrf": token})
    else:
        page = c.get(f"/login/link?token={login_token(app, name)}").text
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        c.post("/login/link", data={"csrf": token, "token": login_token(app, name)})
    return c


def timed(c: TestClient, path: str, runs: int) -> tuple[float, float, int]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        r = c.get(path)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), r.status_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db-url", help="an empty PostgreSQL database (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "ie.toml"
        config.touch()
        values = {"ie.data_dir": str(Path(tmp) / "data"), "web.secure_cookie": False,
                  "quarantine.cli_socket": ""}
        if args.db_url:
            values["ie.database_url"] = args.db_url
        app = create_app(config, overrides=values)
        migrate.upgrade(app.db)
        start = time.perf_counter()
        own, other = fill(app, args.messages)
        print(f"{app.db.engine.dialect.name}: {args.messages} held messages, 20000 history "
              f"rows, filled in {time.perf_counter() - start:.1f} s")
        credentials.set_password(app, "root", PASSWORD)
        admin, owner = client(app, None), client(app, "acct7")
        day = (datetime.now(UTC) - timedelta(days=10)).date().isoformat()
        pages = [
            ("admin", admin, "/quarantine"),
            ("admin", admin, "/quarantine?page=1500"),
            ("admin", admin, "/quarantine?account=acct42"),
            ("admin", admin, "/quarantine?reason=winexec"),
            ("admin", admin, "/quarantine?sender=sender4999"),
            ("admin", admin, "/quarantine?recipient=rcpt8999"),
            ("admin", admin, "/quarantine?since=24h&reason=spam"),
            ("admin", admin, f"/quarantine?date_from={day}&date_to={day}"),
            ("admin", admin, f"/quarantine/{own}"),
            ("admin", admin, f"/quarantine/{own}?view=headers"),
            ("admin", admin, "/quarantine/history"),
            ("admin", admin, "/quarantine/history?page=300"),
            ("admin", admin, "/monitor"),
            ("admin", admin, "/monitor?since=24h&page=4"),
            ("admin", admin, "/monitor?field=sender&q=u3%40d2.site42.example"),
            ("admin", admin, "/statistics"),
            ("admin", admin, "/statistics?days=90&account=acct42"),
            ("admin", admin, "/settings"),
            ("owner", owner, "/statistics"),
            ("owner", owner, "/quarantine"),
            ("owner", owner, "/quarantine?reason=spam&page=5"),
            ("owner", owner, f"/quarantine/{own}"),
            ("owner", owner, f"/quarantine/{other}"),
            ("owner", owner, "/quarantine/history"),
            ("owner", owner, "/account"),
        ]
        print(f"{'who':6} {'page':45} {'status':>6} {'median ms':>10} {'max ms':>8}")
        slowest = 0.0
        for who, c, path in pages:
            median, worst, status = timed(c, path, args.runs)
            slowest = max(slowest, worst)
            print(f"{who:6} {path[:45]:45} {status:>6} {median:>10.1f} {worst:>8.1f}")
        print(f"slowest answer: {slowest:.1f} ms (target: under 300 ms)")
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
