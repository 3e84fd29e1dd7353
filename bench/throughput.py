"""Throughput and latency of ie-filterd, measured end to end (a benchmark, not a test).

Starts a real ``ie-filterd`` (subprocess, SQLite in a temporary data directory, the
default plugins and pipeline) whose reinjection goes to an aiosmtpd sink, sends
``--messages`` corpus messages from ``--clients`` concurrent SMTP clients, and prints
messages per second, latency percentiles (SMTP DATA answered) and the daemon's peak RSS.
Before the timed messages the daemon's classifier learns other corpus messages (``ie-cli
learn``) and must say it is ready, as on a server in use (``--untrained`` skips that).
When rspamd is installed, a private rspamd (with Hyperscan) then scans the same messages
and its CPU per message is printed beside ie's own work (``--no-rspamd`` skips it).

    python bench/throughput.py --messages 500 --clients 8

``--database postgresql`` runs the daemon on a fresh PostgreSQL database (dropped after
the run; ``IE_TEST_PG`` names the server as for the tests).  ``--clients 1,8,32`` runs each
concurrency in turn.  ``--base DIR --repeats N`` compares this tree with another source
tree of ie (for example ``git archive main`` unpacked in DIR, with the ``ie_core``/
``ie_plugins``/``ie_migrations``/``ie_cli``/``ie_sieve`` package names as symbolic links
there, run through ``PYTHONPATH``): N interleaved pairs per concurrency, medians printed.
``--tree DIR`` runs such an unpacked tree as "this tree" (so that editing the checkout
during a long run changes nothing).

A bare aiosmtpd relay (accept, send on over a pooled connection, no checks) runs in
the same way before each pair, unless ``--no-bare``; "x bare CPU" is the CPU per message
of each server over the bare relay's.

``--compare-metrics N`` runs N interleaved pairs of daemons, ``filter.metrics_listen`` off
and on, and prints the CPU per message of each, then the CPU the metric updates of one
message take on their own (a figure the noise of a shared machine does not blur).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratch_db import postgresql_database  # noqa: E402

from tests.fixtures.daemon import DaemonProcess, wait_port  # noqa: E402
from tests.fixtures.sink import Sink, free_port  # noqa: E402

PG_ADMIN_URL = os.environ.get("IE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CORPUS = Path(os.environ.get("IE_CORPUS", ROOT.parent / "shared" / "corpus"))


def corpus_files(label: str) -> list[Path]:
    return sorted(CORPUS.glob(f"{label}/*.eml"))


def corpus_messages(limit: int) -> list[bytes]:
    files = corpus_files("ham")[: limit // 2] + corpus_files("spam")[: limit - limit // 2]
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


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a running process and its live children (the
    workers and the services process), from /proc."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except OSError:
        pass
    return total


@contextmanager
def database_url(kind: str) -> Iterator[str]:
    """An empty database for one run: "" (the daemon's SQLite default) or a fresh
    PostgreSQL database, dropped afterwards."""
    if kind == "sqlite":
        yield ""
        return
    with postgresql_database(PG_ADMIN_URL) as url:
        yield url


def run_once(messages: list[bytes], count: int, clients: int,
             extra: dict[str, object], database: str = "sqlite",
             source: str | None = None, train: bool = True) -> dict[str, float]:
    """One daemon (of the source tree ``source``, default this one), ``count`` messages
    from ``clients`` clients: its figures.  With ``train`` its classifier first learns
    corpus messages other than the timed ones, as a server in use has."""
    sink = Sink().start()
    env = {"PYTHONPATH": source} if source else None
    with tempfile.TemporaryDirectory(prefix="ie-bench-") as tmp, \
            database_url(database) as url:
        values: dict[str, object] = {"filter.reinject": f"127.0.0.1:{sink.port}", **extra}
        if url:
            values["ie.database_url"] = url
        daemon = DaemonProcess(Path(tmp), values)
        daemon.start(env=env)
        assert daemon.proc is not None
        if train:
            train_classifier(daemon.config, len(messages), env)
        try:
            figures = drive(daemon.outgoing_port, daemon.proc.pid, messages, count, clients)
        finally:
            daemon.stop()
    figures["delivered"] = len(sink.messages)
    sink.stop()
    return figures


TRAIN_PER_LABEL = 300
"""Corpus messages of each label the daemon's classifier learns before a run (the
built-in one classifies from 100 of each)."""


def train_classifier(config: Path, timed: int, env: dict[str, str] | None) -> None:
    """``ie-cli learn`` the :data:`TRAIN_PER_LABEL` corpus messages of each label that
    follow the ``timed`` ones, then check that the classifier says it is ready."""
    cli = str(Path(sys.executable).parent / "ie-cli")
    run_env = {**os.environ, **(env or {})}
    for label, first in (("ham", timed // 2), ("spam", timed - timed // 2)):
        files = corpus_files(label)[first:first + TRAIN_PER_LABEL]
        if len(files) < TRAIN_PER_LABEL:
            raise SystemExit(f"the corpus has too few {label} messages to train after the "
                             f"{timed} timed ones")
        subprocess.run([cli, "--config", str(config), "learn", "--json", label,
                        *map(str, files)], check=True, env=run_env, capture_output=True)
    out = subprocess.run([cli, "--config", str(config), "classifier", "stats", "--json"],
                         check=True, env=run_env, capture_output=True, text=True).stdout
    backends = json.loads(out)["backends"]
    if not any(stats.get("ready") for stats in backends.values()):
        raise SystemExit(f"the trained classifier is not ready: {out.strip()[:300]}")


def rspamd_scan_cpu(messages: list[bytes]) -> float | None:
    """rspamd's CPU per message (ms, its main process and workers) scanning each message
    through ``/checkv2`` on a private rspamd with Hyperscan, after a warm-up pass; ``None``
    when rspamd is not installed."""
    if shutil.which("rspamd") is None:
        return None
    from tests.fixtures.rspamd import running_rspamd

    with tempfile.TemporaryDirectory(prefix="ie-bench-rspamd-") as tmp, \
            running_rspamd(Path(tmp), hyperscan=True) as rspamd:
        def scan_all() -> None:
            for raw in messages:
                request = urllib.request.Request(
                    f"http://{rspamd.address}/checkv2", data=raw, method="POST",
                    headers={"From": "bench@example.com", "Rcpt": "r@example.org",
                             "IP": "127.0.0.1"})
                with urllib.request.urlopen(request, timeout=60) as answer:
                    answer.read()

        scan_all()
        before = cpu_seconds(rspamd.pid)
        scan_all()
        return (cpu_seconds(rspamd.pid) - before) * 1000 / len(messages)


def run_bare(messages: list[bytes], count: int, clients: int) -> dict[str, float]:
    """The bare relay (:func:`serve_bare_relay`, a process of its own) in ie's place."""
    sink = Sink().start()
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--bare-relay", str(port),
                             str(sink.port)])
    try:
        wait_port(port)
        figures = drive(port, proc.pid, messages, count, clients)
    finally:
        proc.terminate()
        proc.wait()
    figures["delivered"] = len(sink.messages)
    sink.stop()
    return figures


def serve_bare_relay(port: int, sink_port: int) -> None:
    """An aiosmtpd server that accepts every message and sends it on to the sink over a
    pooled connection, with no checks at all: the floor ie is compared with."""
    import asyncio
    import queue

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    SMTP.line_length_limit = 1 << 20  # as ie's (a corpus message has a longer line)
    pool: queue.SimpleQueue[smtplib.SMTP] = queue.SimpleQueue()

    def send(mail_from: str, rcpt_tos: list[str], data: bytes) -> None:
        try:
            conn = pool.get_nowait()
        except queue.Empty:
            conn = smtplib.SMTP("127.0.0.1", sink_port)
        conn.sendmail(mail_from, rcpt_tos, data)
        pool.put(conn)

    class Relay:
        async def handle_DATA(self, server: object, session: object,
                              envelope: Any) -> str:
            await asyncio.get_running_loop().run_in_executor(
                None, send, envelope.mail_from, envelope.rcpt_tos, envelope.original_content)
            return "250 OK"

    Controller(Relay(), hostname="127.0.0.1", port=port, data_size_limit=None).start()
    threading.Event().wait()  # until SIGTERM


WARMUP: list[bytes] = []
"""Messages sent (from the same number of clients, untimed) before the timed ones:
``--warmup N``, the last N corpus messages (neither timed nor learnt).  A server in an
outbreak has run for a while; a daemon just started pays its first messages' costs
(each worker's first read of the classifier's probabilities, imports, connections) in
the timed run, and at 300 messages and 8 clients those 8 first messages are the slowest
2.7 %: the p99 itself."""


def drive(port: int, pid: int, messages: list[bytes], count: int,
          clients: int) -> dict[str, float]:
    """Send ``count`` messages to ``port`` from ``clients`` clients (after
    :data:`WARMUP` untimed ones); the figures, with the CPU of process ``pid`` and its
    children."""
    if WARMUP:
        send_all(port, WARMUP, len(WARMUP), clients)
    latencies, failures, elapsed, cpu = send_all(port, messages, count, clients, pid)
    rss = peak_rss_kib(pid)
    qs = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"rate": len(latencies) / elapsed, "elapsed": elapsed, "p50": qs[49] * 1000,
            "p95": qs[94] * 1000, "p99": qs[98] * 1000,
            "max": max(latencies, default=0) * 1000, "cpu_ms": cpu * 1000 / count,
            "rss": rss / 1024, "refused": len(failures)}


def send_all(port: int, messages: list[bytes], count: int, clients: int,
             pid: int | None = None) -> tuple[list[float], list[str], float, float]:
    """``count`` messages from ``clients`` clients: the latencies, the failures, the
    seconds it took and the CPU seconds of ``pid`` and its children meanwhile."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    next_index = iter(range(count))

    def client() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
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

    cpu_before = cpu_seconds(pid) if pid else 0.0
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return latencies, failures, elapsed, (cpu_seconds(pid) - cpu_before) if pid else 0.0


def instrument_cost(rounds: int = 20000) -> float:
    """CPU microseconds the metric updates of one delivered outgoing message take in this
    process: the daemon's calls (session opened and closed, each stage of the default
    pipeline timed, the reinjection reply and its time, the message and its latency)."""
    from ie_core import metrics
    from ie_core.app import create_app
    from ie_core.verdict import Direction

    stages = [s.name for s in create_app(None).stages(Direction.OUTGOING)]
    metrics.enable()
    started = time.process_time()
    for _ in range(rounds):
        metrics.get().sessions.labels("outgoing").inc()
        stage_latency = metrics.get().stage_latency
        for name in stages:
            t0 = time.perf_counter()
            stage_latency.labels(name).observe(time.perf_counter() - t0)
        m = metrics.get()
        m.reinjection.labels("outgoing", "2xx").inc()
        m.reinjection_latency.labels("outgoing").observe(0.01)
        m = metrics.get()
        m.messages.labels("outgoing", "deliver", "delivered").inc()
        m.latency.labels("outgoing").observe(0.02)
        metrics.get().sessions.labels("outgoing").dec()
    return (time.process_time() - started) * 1e6 / rounds


def instrument_costs() -> dict[str, float]:
    """:func:`instrument_cost` in a fresh process, figures in memory (one worker) and in
    prometheus-client's multiprocess files (several workers)."""
    costs = {}
    with tempfile.TemporaryDirectory(prefix="ie-bench-mp-") as tmp:
        for mode, env in (("1 worker", {}), ("workers", {"PROMETHEUS_MULTIPROC_DIR": tmp})):
            clean = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            out = subprocess.run([sys.executable, __file__, "--instrument-cost"],
                                 env={**clean, **env}, capture_output=True, text=True,
                                 check=True)
            costs[mode] = float(out.stdout)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--clients", default="8",
                        help="concurrent clients; a comma-separated list runs each in turn")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--base", metavar="DIR",
                        help="another source tree of ie to compare with (see above)")
    parser.add_argument("--tree", metavar="DIR",
                        help="an unpacked source tree to run as 'this tree' (default: "
                             "this checkout)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="interleaved runs per concurrency (medians printed)")
    parser.add_argument("--compare-metrics", type=int, default=0, metavar="REPEATS",
                        help="run REPEATS interleaved pairs, /metrics off and on, and "
                             "print the CPU overhead of the metrics")
    parser.add_argument("--no-bare", action="store_true",
                        help="leave out the bare relay (run by default, interleaved)")
    parser.add_argument("--untrained", action="store_true",
                        help="leave ie's classifier untrained (by default it learns "
                             f"{TRAIN_PER_LABEL} corpus messages of each label first)")
    parser.add_argument("--warmup", type=int, default=0, metavar="N",
                        help="send N untimed messages (from as many clients) to each "
                             "server first, as to one that has run for a while")
    parser.add_argument("--no-rspamd", action="store_true",
                        help="do not measure rspamd's scan of the same messages")
    parser.add_argument("--instrument-cost", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare-relay", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_relay:
        serve_bare_relay(*args.bare_relay)
        return
    if args.instrument_cost:
        print(f"{instrument_cost():.3f}")
        return
    global WARMUP
    WARMUP = corpus_messages(2250)[-args.warmup:] if args.warmup else []
    messages = corpus_messages(min(args.messages, 2250))
    size = sum(len(m) for m in messages) / len(messages)
    concurrencies = [int(c) for c in args.clients.split(",")]
    trained = "untrained" if args.untrained else f"trained on {TRAIN_PER_LABEL} + " \
        f"{TRAIN_PER_LABEL} other corpus messages"
    print(f"messages: {args.messages} per run, mean size {size / 1024:.1f} KiB "
          f"(SpamAssassin corpus, default pipeline, classifier {trained}, "
          f"{args.database}, {args.workers} worker(s), {len(WARMUP)} untimed first)")
    if args.compare_metrics:
        compare_metrics(messages, args.messages, concurrencies[0], args.compare_metrics,
                        args.workers)
        return
    trees: dict[str, str | None] = {"this tree": args.tree} if not args.base else {
        "base": args.base, "this tree": args.tree}
    print("| server | clients | msgs/s | p50 ms | p99 ms | CPU ms/msg | x bare CPU | RSS MiB "
          "| refused |")
    print("|---|---|---|---|---|---|---|---|---|")
    own: dict[tuple[str, int], float] = {}
    for clients in concurrencies:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        if not args.no_bare:
            runs["bare relay"] = []
        for _ in range(args.repeats):
            if not args.no_bare:
                runs["bare relay"].append(run_bare(messages, args.messages, clients))
            for name, source in trees.items():
                runs[name].append(run_once(messages, args.messages, clients,
                                           {"filter.workers": args.workers},
                                           args.database, source, not args.untrained))
        bare = (statistics.median(r["cpu_ms"] for r in runs["bare relay"])
                if not args.no_bare else 0.0)
        for name, results in runs.items():
            med = {k: statistics.median(r[k] for r in results) for k in results[0]}
            ratio = f"{med['cpu_ms'] / bare:.1f}" if bare else "-"
            print(f"| {name} | {clients} | {med['rate']:.1f} | {med['p50']:.1f} "
                  f"| {med['p99']:.1f} | {med['cpu_ms']:.2f} | {ratio} | {med['rss']:.1f} "
                  f"| {sum(r['refused'] for r in results):.0f} |", flush=True)
            if bare and name != "bare relay":
                own[(name, clients)] = med["cpu_ms"] - bare
    scan = None if args.no_rspamd else rspamd_scan_cpu(messages[:args.messages])
    if scan is None:
        print("rspamd: not measured (not installed, or --no-rspamd)")
        return
    print(f"rspamd scan of the same messages (private rspamd with Hyperscan, /checkv2, "
          f"one at a time): {scan:.2f} CPU ms/msg")
    for (name, clients), ms in own.items():
        print(f"{name}, {clients} clients: ie's own work (ie - bare relay) {ms:.2f} CPU "
              f"ms/msg = {ms / scan:.1f}x rspamd's scan")


def compare_metrics(messages: list[bytes], count: int, clients: int, repeats: int,
                    workers: int) -> None:

    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for _ in range(repeats):
        for mode in ("off", "on"):
            listen = f"127.0.0.1:{free_port()}" if mode == "on" else ""
            runs[mode].append(run_once(messages, count, clients,
                                       {"filter.metrics_listen": listen,
                                        "filter.workers": workers}))
    print("| metrics | msgs/s | p50 ms | p99 ms | CPU ms/msg |")
    print("|---|---|---|---|---|")
    for mode, results in runs.items():
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(f"| {mode} | {med['rate']:.1f} | {med['p50']:.1f} | {med['p99']:.1f} "
              f"| {med['cpu_ms']:.2f} |")
    off = statistics.median(r["cpu_ms"] for r in runs["off"])
    on = statistics.median(r["cpu_ms"] for r in runs["on"])
    print(f"metrics overhead: {100 * (on - off) / off:+.1f} % CPU per message "
          f"(median of {repeats} interleaved runs each, {workers} worker(s))")
    for mode, micros in instrument_costs().items():
        print(f"metric updates alone ({mode}): {micros:.1f} us per message = "
              f"{100 * micros / (off * 1000):.2f} % of the CPU per message without metrics")


if __name__ == "__main__":
    main()
