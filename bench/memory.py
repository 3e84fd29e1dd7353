"""Peak memory of ie-filterd under parallel large messages (a benchmark, not a test).

Starts a real ``ie-filterd`` (subprocess, SQLite in a temporary data directory, the
default plugins and pipeline) whose reinjection goes to an aiosmtpd sink that only counts
bytes, sends ``--clients`` messages of ``--size`` bytes at once, and prints the daemon's
peak RSS (``VmHWM`` of its largest process: with several workers, a worker), how many
messages were accepted and how long it took.

    python bench/memory.py --clients 16 --size 51000000
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiosmtpd.controller import Controller  # noqa: E402

from tests.fixtures.daemon import DaemonProcess  # noqa: E402
from tests.fixtures.sink import LenientSMTP, free_port  # noqa: E402


class CountingHandler:
    """Accepts every message and keeps only its size."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.sizes.append(len(envelope.original_content or b""))
        envelope.original_content = envelope.content = None
        return "250 2.0.0 Counted"


class CountingController(Controller):
    def factory(self) -> LenientSMTP:
        return LenientSMTP(self.handler, **self.SMTP_kwargs)


def message(size: int, index: int) -> bytes:
    head = (f"From: bench@example.com\r\nTo: r{index}@example.org\r\n"
            f"Subject: large {index}\r\nContent-Type: text/plain\r\n\r\n").encode()
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456\r\n"
    body = line * ((size - len(head)) // len(line))
    return head + body


def peak_rss_kib(pid: int) -> int:
    """The largest peak RSS (``VmHWM``) of the process and its children (with several
    workers the messages are in the workers, not in the parent)."""
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            peak = max(peak, peak_rss_kib(int(child)))
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--size", type=int, default=51_000_000)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=INT",
                        help="extra integer configuration, e.g. filter.spool_threshold=0")
    args = parser.parse_args()
    handler = CountingHandler()
    sink = CountingController(handler, hostname="127.0.0.1", port=free_port(),
                              data_size_limit=None)
    sink.start()
    extra = {k: int(v) for k, v in (s.split("=", 1) for s in args.set)}
    with tempfile.TemporaryDirectory(prefix="ie-bench-") as tmp:
        daemon = DaemonProcess(Path(tmp), {"filter.reinject": f"127.0.0.1:{sink.port}",
                                           "filter.reinject_timeout": 600.0, **extra})
        daemon.start()
        assert daemon.proc is not None
        before = peak_rss_kib(daemon.proc.pid)
        replies: list[str] = []
        lock = threading.Lock()

        def client(i: int) -> None:
            raw = message(args.size, i)
            try:
                with smtplib.SMTP("127.0.0.1", daemon.outgoing_port, timeout=900) as s:
                    s.sendmail("bench@example.com", [f"r{i}@example.org"], raw)
                    result = "250"
            except smtplib.SMTPException as err:
                result = str(err)[:100]
            with lock:
                replies.append(result)

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        peak = peak_rss_kib(daemon.proc.pid)
        daemon.stop()
    sink.stop()
    accepted = replies.count("250")
    print(f"clients={args.clients} size={args.size} accepted={accepted} "
          f"delivered={len(handler.sizes)} seconds={elapsed:.1f}")
    print(f"rss_idle_mib={before / 1024:.0f} peak_rss_mib={peak / 1024:.0f} "
          f"growth_per_message_size={(peak - before) * 1024 / args.size:.2f}")
    for r in sorted(set(replies) - {"250"}):
        print("failure:", r)


if __name__ == "__main__":
    main()
