"""Throughput and latency of ie-filterd, measured end to end (a benchmark, not a test).

Starts a real ``ie-filterd`` (subprocess, SQLite in a temporary data directory, the
default plugins and pipeline) whose reinjection goes to an aiosmtpd sink, sends
``--messages`` corpus messages from ``--clients`` concurrent SMTP clients, and prints
messages per second, latency percentiles (SMTP DATA answered) and the daemon's peak RSS.

    python bench/throughput.py --messages 500 --clients 8
"""

from __future__ import annotations

import argparse
import os
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.daemon import DaemonProcess  # noqa: E402
from tests.fixtures.sink import Sink  # noqa: E402

CORPUS = Path(os.environ.get("IE_CORPUS", ROOT.parent / "shared" / "corpus"))


def corpus_messages(limit: int) -> list[bytes]:
    files = sorted(CORPUS.glob("ham/*.eml"))[: limit // 2] + sorted(
        CORPUS.glob("spam/*.eml"))[: limit - limit // 2]
    out = []
    for f in files:
        raw = f.read_bytes()
        if raw.startswith(b"From "):  # mbox separator line, not a header
            raw = raw.split(b"\n", 1)[1]
        out.append(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    if not out:
        raise SystemExit(f"no corpus at {CORPUS} (set IE_CORPUS)")
    return out


def peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    messages = corpus_messages(min(args.messages, 2250))
    sink = Sink().start()
    with tempfile.TemporaryDirectory(prefix="ie-bench-") as tmp:
        daemon = DaemonProcess(Path(tmp), {"filter.reinject": f"127.0.0.1:{sink.port}"})
        daemon.start()
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        next_index = iter(range(args.messages))

        def client() -> None:
            with smtplib.SMTP("127.0.0.1", daemon.outgoing_port, timeout=60) as s:
                for i in next_index:
                    raw = messages[i % len(messages)]
                    started = time.perf_counter()
                    try:
                        s.sendmail("bench@example.com", [f"r{i}@example.org"], raw)
                    except smtplib.SMTPException as err:
                        with lock:
                            failures.append(str(err)[:80])
                        continue
                    with lock:
                        latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        assert daemon.proc is not None
        rss = peak_rss_kib(daemon.proc.pid)
        daemon.stop()
    delivered = len(sink.messages)
    sink.stop()
    qs = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    size = sum(len(m) for m in messages) / len(messages)
    print(f"messages sent: {args.messages} from {args.clients} clients, "
          f"mean size {size / 1024:.1f} KiB (SpamAssassin corpus, default pipeline)")
    print(f"delivered to sink: {delivered}; refused: {len(failures)}")
    print(f"throughput: {len(latencies) / elapsed:.1f} messages/s over {elapsed:.1f} s")
    print(f"latency ms: p50 {qs[49] * 1000:.1f}  p95 {qs[94] * 1000:.1f}  "
          f"p99 {qs[98] * 1000:.1f}  max {max(latencies, default=0) * 1000:.1f}")
    print(f"ie-filterd peak RSS: {rss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
