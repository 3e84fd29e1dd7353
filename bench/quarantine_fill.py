"""Cost of holding a message as one account's quarantine fills up (a benchmark, not a
test): the outbreak case, where a hacked account's spam is held message after message.

Holds ``--passes`` passes of ``--messages`` messages of ``--size`` bytes for the same
account through the quarantine's hold (``processor.hold``: the file, the row, the
evictions, the events), in this process, on SQLite (a temporary file) and, with ``--pg``,
on a fresh PostgreSQL database, and prints the milliseconds per message of each pass, of
wall time and of this process's CPU.  The account's limit is ``--limit-mb``: once its
quarantine is full every hold evicts the oldest message.  The target is a flat cost: the
last pass within 10 % of the first.  ``--tree DIR`` runs another source tree of ie (an
unpacked ``git archive`` with the ``ie_*`` package links, as for ``bench/throughput.py``).

    python bench/quarantine_fill.py --messages 5000 --passes 4 [--pg URL] [--tree DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from passes import timed_passes
from scratch_db import scratch_database


def run(url: str, data_dir: Path, passes: int, n: int, size: int,
        limit_mb: int) -> list[tuple[float, float]]:
    from ie_core import (
        Action,
        Direction,
        Finding,
        ManualClock,
        MessageContext,
        Verdict,
        create_app,
    )
    from ie_core.db import migrate
    from ie_core.processor import hold

    clock = ManualClock()
    config = data_dir / "ie.toml"
    config.touch()
    app = create_app(config, clock=clock, overrides={
        "ie.data_dir": str(data_dir), "ie.database_url": url, "quarantine.cli_socket": ""})
    migrate.upgrade(app.db)
    app.settings.set("quarantine.storage_capacity_mb", limit_mb)
    head = b"From: spammer@example.com\r\nTo: r@example.org\r\nSubject: buy now\r\n\r\n"
    raw = head + b"x" * (size - len(head) - 2) + b"\r\n"
    verdict = Verdict(Action.QUARANTINE,
                      [Finding(stage="spam", reason="spam", score=9.0,
                               action=Action.QUARANTINE)], 9.0)

    def one() -> None:
        ctx = MessageContext(Direction.OUTGOING, raw, "spammer@example.com",
                             ["r@example.org"], clock.now())
        ctx.identity.account = "hacked"
        hold(app, ctx, verdict)
        clock.advance(seconds=0.01)

    try:
        return timed_passes(passes, n, one)
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--size", type=int, default=5000, help="bytes per message")
    parser.add_argument("--limit-mb", type=int, default=50,
                        help="the account's quarantine limit (full after limit/size holds)")
    parser.add_argument("--pg", help="PostgreSQL admin URL (a database is made and dropped)")
    parser.add_argument("--tree", help="another source tree of ie to run")
    args = parser.parse_args()
    sys.path.insert(0, args.tree or str(Path(__file__).resolve().parents[1]))

    full = args.limit_mb * 1024 * 1024 // args.size
    print(f"{args.messages} holds of {args.size} bytes per pass for one account, limit "
          f"{args.limit_mb} MB (full after {full} holds; then each hold evicts)")
    print(f"{'database':<10} {'':<5} " +
          " ".join(f"{'pass ' + str(i + 1):>9}" for i in range(args.passes)) + "  ms/hold")
    for backend in ["sqlite"] + (["postgresql"] if args.pg else []):
        with tempfile.TemporaryDirectory() as tmp, \
                scratch_database(backend, Path(tmp), args.pg) as url:
            costs = run(url, Path(tmp), args.passes, args.messages, args.size, args.limit_mb)
        for column, label in ((0, "wall"), (1, "CPU")):
            print(f"{backend:<10} {label:<5} " + " ".join(f"{c[column]:9.2f}" for c in costs))


if __name__ == "__main__":
    main()
