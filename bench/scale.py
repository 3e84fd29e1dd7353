"""The command lines and one hold at server scale (a benchmark, not a test).

Builds a database with 10,000 accounts, 100,000 sender objects (accounts, domains, sender
addresses, scripts), 1,000,000 held messages over 30 days and 1,000,000 send rows in
the last hour (``--factor`` scales all four), on SQLite (a temporary file) and, with
``--pg``, on a fresh PostgreSQL database (dropped afterwards).  Then it runs each command
below ``--runs`` times through the real ``ie-cli`` (the script next to this interpreter)
and prints the median wall time alone (no ie-filterd: the command starts from nothing),
served (a real ``ie-filterd`` on the database runs it: the ``cli_server`` plugin), and in
a warm process (click's runner in this one: the App built anew each time, nothing
imported again: the command's own work on the database); last, that ``ie-filterd``
holds one message for a Windows executable (SMTP DATA to 250).  Issue 14 asks for every
command under 300 ms.

    python bench/scale.py [--factor 1] [--runs 3] [--pg postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import os
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratch_db import scratch_database  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from ie_core import create_app  # noqa: E402
from ie_core.db import migrate  # noqa: E402
from ie_plugins.quarantine.models import HeldMessage, QuarantineAccount  # noqa: E402
from ie_plugins.ratelimit.models import SenderObject, SendRecord  # noqa: E402
from tests.fixtures.daemon import DaemonProcess  # noqa: E402
from tests.fixtures.sink import Sink  # noqa: E402
from tests.fixtures.winexec_messages import mail, pe_file  # noqa: E402

HOLD = "one message held (DATA to 250)"
REASONS = (["spam"], ["winexec"], ["ratelimit"], ["spam", "ratelimit"])
CHUNK = 20_000


def commands(accounts: int) -> list[list[str]]:
    some = f"acct{accounts // 2}"
    return [
        ["version"],
        ["emails", "list", "--json"],
        ["emails", "list", "--json", "--offset", "500000"],
        ["emails", "list", "--json", "--account", some],
        ["emails", "list", "--json", "--reason", "winexec"],
        ["emails", "list", "--json", "--sender", "sender77@"],
        ["emails", "list", "--json", "--direction", "incoming"],
        ["accounts", "list", "--json"],
        ["accounts", "list", "--json", "--limit", "25"],
        ["accounts", "list", "--json", "--limit", "25", "--offset", str(accounts // 2)],
        ["accounts", "list", "--json", "--name", some],
        ["am", "stats", "--since", "1h"],
        ["am", "stats", "--since", "1h", "--account-name", some],
        ["am", "stats", "--since", "1h", "--offset", str(accounts // 2)],
        ["whitelist", "sender", "list", "--json"],
        ["stats", "incoming", "--json"],
    ]


def fill(url: str, data_dir: Path, factor: float) -> int:
    """Build the rows; the number of accounts."""
    accounts = max(10, int(10_000 * factor))
    objects = int(100_000 * factor)
    held = int(1_000_000 * factor)
    sends = int(1_000_000 * factor)
    config = data_dir / "ie.toml"
    config.write_text(f'[ie]\ndata_dir = "{data_dir}"\ndatabase_url = "{url}"\n'
                      '[quarantine]\ncli_socket = ""\n')
    app = create_app(config)
    migrate.upgrade(app.db, hooks=app.hooks)
    now = datetime.now(UTC)
    started = time.monotonic()
    with app.db.session() as s:
        s.execute(insert(QuarantineAccount), [
            {"name": f"acct{a}", "state": "active", "created_at": now}
            for a in range(accounts)])
        rows, ids = [], []
        for a in range(accounts):  # accounts, then domains, addresses and scripts under them
            ids.append(str(uuid.uuid4()))
            rows.append({"id": ids[-1], "so_type": "account", "name": f"acct{a}",
                         "parent_id": None, "created_at": now})
        kinds = ("domain", "sender_email", "script")
        for n in range(objects - accounts):
            a = n % accounts
            kind = kinds[n % 3]
            name = {"domain": f"d{n}.site{a}.example", "sender_email": f"u{n}@site{a}.example",
                    "script": f"site{a}.example/s{n}.php"}[kind]
            rows.append({"id": str(uuid.uuid4()), "so_type": kind, "name": name,
                         "parent_id": ids[a], "created_at": now})
        for start in range(0, len(rows), CHUNK):
            s.execute(insert(SenderObject), rows[start:start + CHUNK])
        object_ids = [r["id"] for r in rows]
    with app.db.session() as s:
        for start in range(0, sends, CHUNK):
            s.execute(insert(SendRecord), [{
                "object_id": object_ids[n % len(object_ids)], "message_id": str(uuid.uuid4()),
                "at": now - timedelta(seconds=(n * 3600 // sends) + 1), "outcome": "sent",
                "recipients": 1, "counted": True} for n in range(start, min(start + CHUNK,
                                                                             sends))])
    for start in range(0, held, CHUNK):
        with app.db.session() as s:
            s.execute(insert(HeldMessage), [_held(n, held, accounts, now)
                                            for n in range(start, min(start + CHUNK, held))])
    app.close()
    if url.startswith("postgresql"):  # what autovacuum does on a live server
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            c.execute(text("VACUUM ANALYZE"))
        engine.dispose()
    print(f"built in {time.monotonic() - started:.0f} s: {accounts} accounts, {objects} "
          f"sender objects, {held} held messages, {sends} send rows", flush=True)
    return accounts


def _held(n: int, held: int, accounts: int, now: datetime) -> dict[str, object]:
    reasons = REASONS[n % len(REASONS)]
    at = now - timedelta(seconds=n * 30 * 86400 // held)
    return {"id": str(uuid.uuid4()), "account": f"acct{n % accounts}",
            "direction": "incoming" if n % 50 == 0 else "outgoing", "state": "held",
            "received_at": at, "quarantined_at": at,
            "mail_from": f"sender{n % 5000}@site{n % accounts}.example",
            "rcpt_tos": [f"rcpt{n % 9000}@example.org"], "header_from": "Sender <s@x>",
            "subject": f"Offer number {n}", "size": 2000 + n % 5000, "reasons": reasons,
            "reasons_key": "," + ",".join(reasons) + ",", "score": 12.0,
            "claim_limited": False}


def warm(config: str, command: list[str], runs: int) -> float:
    from click.testing import CliRunner

    from ie_cli.main import ie_cli

    seconds = []
    for _ in range(runs + 1):  # the first run imports what the command needs
        started = time.perf_counter()
        result = CliRunner().invoke(ie_cli, ["--config", config, *command])
        seconds.append(time.perf_counter() - started)
        if result.exit_code != 0:
            raise SystemExit(f"{' '.join(command)}: {result.output.strip()}")
    return statistics.median(seconds[1:]) * 1000


def timed(argv: list[str], runs: int) -> float:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)}: {done.stderr.strip()}")
    return statistics.median(seconds) * 1000


@contextmanager
def running_daemon(url: str, data_dir: Path) -> Iterator[DaemonProcess]:
    """A real ie-filterd on this database (reinjecting into a sink)."""
    sink = Sink().start()
    with tempfile.TemporaryDirectory(prefix="ie-scale-") as tmp:
        daemon = DaemonProcess(Path(tmp), {"filter.reinject": f"127.0.0.1:{sink.port}",
                                           "ie.database_url": url,
                                           "ie.data_dir": str(data_dir)})
        daemon.start()
        try:
            yield daemon
        finally:
            daemon.stop()
            sink.stop()


def served(daemon: DaemonProcess, script: str, command: list[str], runs: int) -> float:
    """Median ms of the command through ``ie-cli`` while ie-filterd runs (it serves the
    commands marked so); exits when the daemon did not run it each time (``version``
    is never sent)."""
    before = daemon.log().count("event=cli_command ")
    ms = timed([script, "--config", str(daemon.config), *command], runs)
    ran = daemon.log().count("event=cli_command ") - before
    if ran != (0 if command == ["version"] else runs):
        raise SystemExit(f"{' '.join(command)}: ie-filterd ran it {ran} of {runs} times")
    return ms


def hold_one(daemon: DaemonProcess) -> float:
    """Milliseconds from DATA to the 250 of one message held as winexec by ie-filterd."""
    raw = mail(("setup.exe", pe_file(), "application/octet-stream"))
    with smtplib.SMTP("127.0.0.1", daemon.outgoing_port, timeout=60) as smtp:
        smtp.ehlo()
        smtp.mail("u1@site1.example")
        smtp.rcpt("r@example.org")
        started = time.perf_counter()
        code, reply = smtp.data(raw)
        elapsed = (time.perf_counter() - started) * 1000
    if code != 250 or b"held" not in reply.lower():
        raise SystemExit(f"the message was not held: {code} {reply!r}")
    return elapsed


@contextmanager
def database(kind: str, pg: str | None) -> Iterator[tuple[str, Path]]:
    with tempfile.TemporaryDirectory() as tmp, scratch_database(kind, Path(tmp), pg) as url:
        yield url, Path(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factor", type=float, default=1.0,
                        help="scale of the data (1: 10k accounts, 1M held messages...)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg", help="PostgreSQL admin URL (a database is made and dropped)")
    args = parser.parse_args()
    script = str(Path(sys.executable).with_name("ie-cli"))
    kinds = ["sqlite"] + (["postgresql"] if args.pg else [])
    results: dict[str, dict[str, float]] = {}
    names: list[str] = []
    for kind in kinds:
        with database(kind, args.pg) as (url, data_dir):
            accounts = fill(url, data_dir, args.factor)
            config = str(data_dir / "ie.toml")
            figures = results.setdefault(kind, {})
            for command in commands(accounts):
                name = "ie-cli " + " ".join(command)
                if name not in names:
                    names.append(name)
                figures[name] = timed([script, "--config", config, *command], args.runs)
                figures["warm " + name] = warm(config, command, args.runs)
            with running_daemon(url, data_dir) as daemon:
                for command in commands(accounts):
                    name = "ie-cli " + " ".join(command)
                    figures["served " + name] = served(daemon, script, command, args.runs)
                    print(f"{kind}: {name}: {figures[name]:.0f} ms alone, "
                          f"{figures['served ' + name]:.0f} ms served, warm "
                          f"{figures['warm ' + name]:.0f} ms", file=sys.stderr, flush=True)
                figures["served " + HOLD] = hold_one(daemon)
    names.append(HOLD)
    columns = ("", "served ", "warm ")
    header = " | ".join(f"{k} alone ms | {k} served ms | {k} warm ms" for k in kinds)
    print(f"\n| command | {header} |")
    print("|---|" + "---|---|---|" * len(kinds))
    for name in names:
        cells = []
        for kind in kinds:
            for column in columns:
                ms = results[kind].get(column + name)
                cells.append("-" if ms is None else f"{ms:.0f}" + (" **over 300**"
                                                                   if ms > 300 else ""))
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    print(f"(median of {args.runs} runs; factor {args.factor}; "
          f"{os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
