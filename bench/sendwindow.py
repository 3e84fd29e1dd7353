"""Cost of the send-limit step for one sender as its hour fills up (a benchmark, not a
test).

Runs the ``ratelimit`` stage and the message log for ``--passes`` passes of
``--messages`` messages from the same sender, in this process, on SQLite (a temporary
file) and, with ``--pg``, on a fresh PostgreSQL database, and prints the milliseconds per
message of each pass, of wall time and of this process's CPU (all its threads: a shared
machine blurs wall time far more; on PostgreSQL the server's share is only in wall
time): with limits that apply (every object counted and checked) and with no limit at
all.  The target is a flat cost: the last pass within 10 % of the first.

    python bench/sendwindow.py --messages 2000 --passes 3 [--pg URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from passes import timed_passes  # noqa: E402
from scratch_db import scratch_database  # noqa: E402

from ie_core import Direction, ManualClock, MessageContext, Outcome, Result, create_app  # noqa: E402
from ie_core.db import migrate  # noqa: E402
from ie_core.processor import analyse, record  # noqa: E402
from ie_plugins.ratelimit.limits import save_server_settings  # noqa: E402

RAW = b"From: bob@example.com\r\nSubject: s\r\n\r\nbody\r\n"


def run(url: str, data_dir: Path, limits: dict[str, int], passes: int,
        n: int) -> list[tuple[float, float]]:
    clock = ManualClock()
    config = data_dir / "ie.toml"
    config.touch()
    app = create_app(config, clock=clock, overrides={
        "ie.data_dir": str(data_dir), "ie.database_url": url,
        "pipeline.outgoing": ["ratelimit"], "quarantine.cli_socket": ""})
    migrate.upgrade(app.db)
    save_server_settings(app, limits)

    def one() -> None:
        ctx = MessageContext(Direction.OUTGOING, RAW, "bob@example.com", ["r@example.org"],
                             clock.now())
        verdict = analyse(app, ctx)
        record(app, ctx, verdict, Outcome(Result.DELIVERED), time.monotonic())
        clock.advance(seconds=0.01)

    try:
        return timed_passes(passes, n, one)
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--pg", help="PostgreSQL admin URL (a database is made and dropped)")
    args = parser.parse_args()
    limited = {"account": 10**6, "domain": 10**6, "sender_email": 10**6}
    unlimited = {"account": 0, "domain": 0, "sender_email": 0}
    print(f"{'database':<10} {'limits':<11} " +
          " ".join(f"{'pass ' + str(i + 1):>9}" for i in range(args.passes)) + "  ms/message")
    backends = ["sqlite"] + (["postgresql"] if args.pg else [])
    for backend in backends:
        for name, limits in (("apply", limited), ("none", unlimited)):
            with tempfile.TemporaryDirectory() as tmp, \
                    scratch_database(backend, Path(tmp), args.pg) as url:
                costs = run(url, Path(tmp), limits, args.passes, args.messages)
            for column, label in ((0, "wall"), (1, "CPU")):
                print(f"{backend:<10} {name + ' ' + label:<11} "
                      + " ".join(f"{c[column]:9.2f}" for c in costs))


if __name__ == "__main__":
    main()
