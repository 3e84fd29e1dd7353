#!/usr/bin/env python3
"""Accuracy and cost of the built-in classifier, bogofilter and SpamAssassin, side by side.

Stratified 5-fold cross-validation on the labelled corpus (``$IE_CORPUS``, else
``../shared/corpus`` beside the checkout; ``MANIFEST.tsv`` gives each file's label, ham or
spam).  Fold ``k`` holds the messages
whose position in their label's sorted list is ``k`` modulo 5; each engine is trained on
the four other folds from scratch and classifies fold ``k``.  Every engine gets the same
folds.

Per fold and overall it prints: false positives (ham called spam) as a share of ham,
spam recall (spam called spam; "unsure" counts as missed), precision, the unsure rate, and
messages per second for training and for classification.

- ``builtin``: our classifier, on a fresh SQLite database per fold (the real store),
  judged with the ``classify`` stage's own rule (:func:`ie_plugins.classify.stage.is_spam`:
  label not ``unsure`` and points at or above the threshold) at both default thresholds:
  row ``builtin`` = incoming mail filed as junk (5 points, the classifier's ``spam``
  label), row ``builtin hold`` = outgoing mail held (10 points).
- ``bogofilter``: Debian's package with its shipped defaults (tristate, ham_cutoff 0.45,
  spam_cutoff 0.99), its own temporary ``-d`` directory per fold.
- ``spamassassin``: ``sa-learn`` then ``spamd``/``spamc`` on a loopback port this script
  starts, local tests only (``-L``), no network, auto-learn off, its own temporary site
  configuration and Bayes database per fold; verdict: SpamAssassin's own (score >= 5).
  To stay within minutes on two cores it learns the corpus once and *forgets* each fold
  before testing it (same counts as learning the other four folds), and classifies a
  subset of each fold (``--sa-every N``: every Nth message in the fold's order).

Run: ``.venv/bin/python bench/accuracy.py [--engines builtin,bogofilter,spamassassin]``
(``--engines builtin`` alone takes well under a minute, for tuning).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ie_core import App
    from ie_plugins.bayes.classifier import BuiltinClassifier

CORPUS = Path(os.environ.get("IE_CORPUS")
              or Path(__file__).resolve().parents[2] / "shared" / "corpus")
FOLDS = 5


@dataclass(frozen=True)
class Mail:
    path: Path
    spam: bool


@dataclass
class FoldResult:
    ham: int = 0
    spam: int = 0
    false_pos: int = 0  # ham called spam
    true_pos: int = 0  # spam called spam
    unsure: int = 0
    trained: int = 0
    train_seconds: float = 0.0
    classified: int = 0
    classify_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def add(self, other: FoldResult) -> None:
        for name in ("ham", "spam", "false_pos", "true_pos", "unsure", "trained",
                     "classified"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.train_seconds += other.train_seconds
        self.classify_seconds += other.classify_seconds

    def count(self, mail: Mail, label: str) -> None:
        if mail.spam:
            self.spam += 1
            self.true_pos += label == "spam"
        else:
            self.ham += 1
            self.false_pos += label == "spam"
        self.unsure += label == "unsure"


# An engine trains on (ham, spam) paths in a work dir (it is also told the fold's test
# messages, which it must not learn; it may return its own training seconds), then labels
# test paths: one tuple per message with a label ("spam", "ham", "unsure") per decision
# rule the engine reports (its ``rules``, each a row of the table).
Trainer = Callable[[Path, Sequence[Path], Sequence[Path], Sequence[Mail]], float | None]
Labeller = Callable[[Path, Sequence[Path]], list[tuple[str, ...]]]


@dataclass
class Engine:
    name: str
    train: Trainer
    label: Labeller
    rules: tuple[str, ...] = ("",)  # row-name suffix of each decision rule
    subset_every: int = 1
    prepare: Callable[[Sequence[Mail]], None] | None = None
    teardown: Callable[[], None] | None = None


def load_corpus(root: Path) -> list[Mail]:
    with (root / "MANIFEST.tsv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [Mail(root / r["file"], r["label"] == "spam") for r in rows]


def folds(mails: Sequence[Mail], k: int = FOLDS) -> list[list[Mail]]:
    """Stratified, deterministic: the i-th message of each label goes to fold i % k."""
    out: list[list[Mail]] = [[] for _ in range(k)]
    for spam in (False, True):
        chosen = sorted((m for m in mails if m.spam == spam), key=lambda m: m.path.name)
        for i, mail in enumerate(chosen):
            out[i % k].append(mail)
    return out


def run_engine(engine: Engine, parts: list[list[Mail]]) -> dict[str, list[FoldResult]]:
    """Cross-validate one engine: ``{row name: [result per fold]}``, a row per rule."""
    rows = [f"{engine.name} {rule}".strip() for rule in engine.rules]
    results: dict[str, list[FoldResult]] = {row: [] for row in rows}
    try:
        if engine.prepare:
            engine.prepare([m for part in parts for m in part])
        for k, test in enumerate(parts):
            train = [m for j, part in enumerate(parts) if j != k for m in part]
            ham = [m.path for m in train if not m.spam]
            spam = [m.path for m in train if m.spam]
            with tempfile.TemporaryDirectory(prefix=f"ie-bench-{engine.name}-") as work:
                started = time.perf_counter()
                own = engine.train(Path(work), ham, spam, test)
                train_seconds = own or time.perf_counter() - started
                test = test[::engine.subset_every]
                started = time.perf_counter()
                labels = engine.label(Path(work), [m.path for m in test])
                classify_seconds = time.perf_counter() - started
            for index, row in enumerate(rows):
                result = FoldResult(trained=len(train), train_seconds=train_seconds,
                                    classified=len(test), classify_seconds=classify_seconds)
                for mail, verdicts in zip(test, labels, strict=True):
                    result.count(mail, verdicts[index])
                results[row].append(result)
                print(f"  {row} fold {k + 1}: {summary(result)}", file=sys.stderr,
                      flush=True)
    finally:
        if engine.teardown:
            engine.teardown()
    return results


# -- the built-in classifier --------------------------------------------------------------
def builtin_engine() -> Engine:
    from ie_core import Direction, create_app
    from ie_core.classifier import Classification
    from ie_core.db import migrate
    from ie_plugins.bayes.classifier import BuiltinClassifier
    from ie_plugins.classify.settings import THRESHOLDS
    from ie_plugins.classify.stage import is_spam

    # The stage's decision at each direction's default threshold: junk, then hold.
    thresholds = (float(THRESHOLDS[Direction.INCOMING].default),
                  float(THRESHOLDS[Direction.OUTGOING].default))

    def make(work: Path) -> tuple[App, BuiltinClassifier]:
        config = work / "ie.toml"
        config.write_text("", encoding="utf-8")
        app = create_app(config, overrides={"ie.data_dir": str(work / "data")})
        migrate.upgrade(app.db)
        clf = app.hooks.classifiers(app)["builtin"]
        assert isinstance(clf, BuiltinClassifier)
        return app, clf

    apps: dict[Path, tuple[App, BuiltinClassifier]] = {}

    def train(work: Path, ham: Sequence[Path], spam: Sequence[Path],
              test: Sequence[Mail]) -> None:
        app, clf = make(work)
        apps[work] = (app, clf)
        clf.learn_many((p.read_bytes() for p in ham), spam=False)
        clf.learn_many((p.read_bytes() for p in spam), spam=True)

    def verdicts(result: Classification) -> tuple[str, ...]:
        return tuple("spam" if is_spam(result, t)
                     else "unsure" if result.label == "unsure" else "ham"
                     for t in thresholds)

    def label(work: Path, paths: Sequence[Path]) -> list[tuple[str, ...]]:
        app, clf = apps.pop(work)
        try:
            return [verdicts(clf.classify(p.read_bytes())) for p in paths]
        finally:
            app.close()

    return Engine("builtin", train, label,
                  rules=("", f"hold {thresholds[1]:g} pts"))


# -- bogofilter ---------------------------------------------------------------------------
def bogofilter_engine() -> Engine:
    def train(work: Path, ham: Sequence[Path], spam: Sequence[Path],
              test: Sequence[Mail]) -> None:
        db = work / "bogo"
        db.mkdir()
        for flag, paths in (("-n", ham), ("-s", spam)):
            for chunk in _chunks(paths, 500):
                subprocess.run(["bogofilter", "-d", str(db), flag, "-B", *map(str, chunk)],
                               check=True)

    def label(work: Path, paths: Sequence[Path]) -> list[tuple[str, ...]]:
        names = {"S": "spam", "H": "ham", "U": "unsure"}
        labels: list[tuple[str, ...]] = []
        for chunk in _chunks(paths, 500):
            out = subprocess.run(["bogofilter", "-d", str(work / "bogo"), "-T", "-B",
                                  *map(str, chunk)], capture_output=True, text=True)
            if out.returncode not in (0, 1, 2):
                raise RuntimeError(f"bogofilter failed: {out.stderr.strip()}")
            lines = out.stdout.splitlines()
            labels.extend((names[line.rsplit(" ", 2)[1]],) for line in lines)
        return labels

    return Engine("bogofilter", train, label)


# -- SpamAssassin -------------------------------------------------------------------------
SA_LOCAL_CF = """\
use_bayes 1
bayes_auto_learn 0
bayes_auto_expire 0
bayes_path {bayes}/bayes
bayes_file_mode 0777
skip_rbl_checks 1
use_razor2 0
use_pyzor 0
use_dcc 0
required_score 5.0
lock_method flock
"""


def spamassassin_engine(every: int) -> Engine:
    """SpamAssassin learns the whole corpus once; each fold then starts from a copy of that
    Bayes database with the fold's own messages forgotten (``sa-learn --forget``), which
    leaves exactly the other four folds learned and halves the slowest part of the run.
    Its training rate is that of the one full training run."""
    master = Path(tempfile.mkdtemp(prefix="ie-bench-sa-master-"))
    rate: list[float] = []  # messages learned per second by the one full training
    daemons: list[tuple[int, subprocess.Popen[bytes]]] = []  # the fold's spamd

    def site(work: Path) -> Path:
        path = work / "site"
        path.mkdir()
        for pre in Path("/etc/spamassassin").glob("*.pre"):
            shutil.copy(pre, path / pre.name)
        bayes = work / "bayes"
        bayes.mkdir(mode=0o777, exist_ok=True)
        os.chmod(bayes, 0o777)
        os.chmod(work, 0o755)
        (path / "local.cf").write_text(SA_LOCAL_CF.format(bayes=bayes), encoding="utf-8")
        return path

    def sa_learn(work: Path, flag: str, paths: Sequence[Path]) -> None:
        env = {**os.environ, "HOME": str(work)}
        for chunk in _chunks(paths, 500):
            subprocess.run(["sa-learn", "-L", f"--siteconfigpath={work / 'site'}",
                            "--no-sync", f"--dbpath={work / 'bayes'}", flag,
                            *map(str, chunk)], check=True, capture_output=True, env=env)
        subprocess.run(["sa-learn", "-L", f"--siteconfigpath={work / 'site'}",
                        f"--dbpath={work / 'bayes'}", "--sync"], check=True,
                       capture_output=True, env=env)

    def prepare(mails: Sequence[Mail]) -> None:
        site(master)
        started = time.perf_counter()
        sa_learn(master, "--ham", [m.path for m in mails if not m.spam])
        sa_learn(master, "--spam", [m.path for m in mails if m.spam])
        rate.append(len(mails) / (time.perf_counter() - started))

    def train(work: Path, ham: Sequence[Path], spam: Sequence[Path],
              test: Sequence[Mail]) -> float:
        path = site(work)
        for f in (master / "bayes").iterdir():
            shutil.copy(f, work / "bayes" / f.name)
        sa_learn(work, "--forget", [m.path for m in test])
        subprocess.run(["chown", "-R", "nobody", str(work)], check=True)
        daemons.append(start_spamd(work, path))
        return (len(ham) + len(spam)) / rate[-1]

    def label(work: Path, paths: Sequence[Path]) -> list[tuple[str, ...]]:
        port, proc = daemons.pop()
        try:
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                return [(v,) for v in pool.map(lambda p: spamc(port, p), paths)]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)

    return Engine("spamassassin", train, label, subset_every=every, prepare=prepare,
                  teardown=lambda: shutil.rmtree(master, ignore_errors=True))


def start_spamd(work: Path, site: Path) -> tuple[int, subprocess.Popen[bytes]]:
    port = _free_port()
    proc = subprocess.Popen(
        ["spamd", "-L", "-x", "-u", "nobody", "-i", "127.0.0.1", "-A", "127.0.0.1",
         "-p", str(port), "-m", "2", "--min-spare=1", "--max-spare=2",
         f"--siteconfigpath={site}", "-s", str(work / "spamd.log"),
         "-r", str(work / "spamd.pid"), f"--helper-home-dir={work}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"spamd exited: {(work / 'spamd.log').read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port, proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("spamd did not start")


def spamc(port: int, path: Path) -> str:
    with path.open("rb") as fh:
        out = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(port), "-c", "-x",
                              "-t", "120"], stdin=fh, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"spamc failed on {path}: {out.stderr.strip()}")
    return "spam" if out.returncode == 1 else "ham"


# -- report -------------------------------------------------------------------------------
def _rates(r: FoldResult) -> dict[str, float]:
    total = r.ham + r.spam
    called_spam = r.true_pos + r.false_pos
    return {
        "fp": 100.0 * r.false_pos / r.ham if r.ham else 0.0,
        "recall": 100.0 * r.true_pos / r.spam if r.spam else 0.0,
        "precision": 100.0 * r.true_pos / called_spam if called_spam else 100.0,
        "unsure": 100.0 * r.unsure / total if total else 0.0,
        "train_rate": r.trained / r.train_seconds if r.train_seconds else 0.0,
        "classify_rate": r.classified / r.classify_seconds if r.classify_seconds else 0.0,
    }


def summary(r: FoldResult) -> str:
    x = _rates(r)
    return (f"fp={x['fp']:.2f}% recall={x['recall']:.2f}% precision={x['precision']:.2f}% "
            f"unsure={x['unsure']:.2f}% train={x['train_rate']:.0f}/s "
            f"classify={x['classify_rate']:.0f}/s")


def table(results: dict[str, list[FoldResult]]) -> str:
    head = ("| engine | fold | ham | spam | FP (ham) | spam recall | precision | unsure "
            "| train msg/s | classify msg/s |")
    lines = [head, "|" + "---|" * 10]
    for name, folds_ in results.items():
        overall = FoldResult()
        rows = []
        for k, r in enumerate(folds_, 1):
            overall.add(r)
            rows.append((str(k), r))
        rows.append(("**all**", overall))
        for fold, r in rows:
            x = _rates(r)
            lines.append(f"| {name} | {fold} | {r.ham} | {r.spam} | {x['fp']:.2f}% "
                         f"({r.false_pos}) | {x['recall']:.2f}% | {x['precision']:.2f}% | "
                         f"{x['unsure']:.2f}% | {x['train_rate']:.0f} | "
                         f"{x['classify_rate']:.0f} |")
    return "\n".join(lines)


def _chunks(items: Sequence[Path], size: int) -> list[Sequence[Path]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--engines", default="builtin,bogofilter,spamassassin")
    parser.add_argument("--sa-every", type=int, default=3,
                        help="SpamAssassin classifies every Nth message of each fold")
    args = parser.parse_args(argv)
    parts = folds(load_corpus(args.corpus))
    makers: dict[str, Callable[[], Engine]] = {
        "builtin": builtin_engine,
        "bogofilter": bogofilter_engine,
        "spamassassin": lambda: spamassassin_engine(args.sa_every),
    }
    names = args.engines.split(",")
    unknown = sorted(set(names) - set(makers))
    if unknown:
        parser.error(f"unknown engine {', '.join(unknown)} (known: {', '.join(makers)})")
    results: dict[str, list[FoldResult]] = {}
    started = time.perf_counter()
    for name in names:
        results.update(run_engine(makers[name](), parts))
    print(table(results))
    sizes = ", ".join(str(len(p)) for p in parts)
    print(f"\n{FOLDS} folds of {sizes} messages; SpamAssassin classified one message in "
          f"{args.sa_every} of each fold; total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
