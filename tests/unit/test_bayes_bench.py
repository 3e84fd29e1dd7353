"""The accuracy benchmark's bookkeeping (``bench/accuracy.py``): stratified folds, one table
row per decision rule, rates, and refusing unknown engines.  The engines themselves are
exercised by running the benchmark, not here."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "accuracy.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ie_bench_accuracy", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def make_corpus(root: Path, ham: int, spam: int) -> Path:
    rows = ["file\tlabel"]
    for label, count in (("ham", ham), ("spam", spam)):
        (root / label).mkdir(parents=True)
        for i in range(count):
            name = f"{label}/{i:05d}.eml"
            (root / name).write_bytes(f"Subject: {label} {i}\n\nbody\n".encode())
            rows.append(f"{name}\t{label}")
    (root / "MANIFEST.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def test_folds_are_stratified_and_deterministic(bench: ModuleType, tmp_path: Path) -> None:
    mails = bench.load_corpus(make_corpus(tmp_path, ham=10, spam=5))
    parts = bench.folds(mails)
    assert [sum(not m.spam for m in p) for p in parts] == [2] * 5
    assert [sum(m.spam for m in p) for p in parts] == [1] * 5
    assert sorted(m.path for p in parts for m in p) == sorted(m.path for m in mails)
    assert bench.folds(list(reversed(mails))) == parts


def test_each_rule_is_a_row_counted_on_the_same_folds(bench: ModuleType,
                                                      tmp_path: Path) -> None:
    """A fake engine whose strict rule calls nothing spam and whose loose rule calls every
    spam spam and ham ``00000`` spam; everything else is ham (one spam ``unsure``)."""
    parts = bench.folds(bench.load_corpus(make_corpus(tmp_path, ham=10, spam=5)))
    learned: list[int] = []

    def train(work: Path, ham: Sequence[Path], spam: Sequence[Path],
              test: Sequence[object]) -> None:
        learned.append(len(ham) + len(spam))

    def label(work: Path, paths: Sequence[Path]) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for p in paths:
            loose = ("spam" if "spam" in p.parent.name or p.name == "00000.eml" else "ham")
            strict = "unsure" if p.parent.name == "spam" and p.name == "00000.eml" else "ham"
            out.append((loose, strict))
        return out

    engine = bench.Engine("fake", train, label, rules=("", "strict"))
    results = bench.run_engine(engine, parts)
    assert list(results) == ["fake", "fake strict"]
    assert learned == [12] * 5
    loose, strict = (bench.FoldResult(), bench.FoldResult())
    for r in results["fake"]:
        loose.add(r)
    for r in results["fake strict"]:
        strict.add(r)
    assert (loose.ham, loose.spam, loose.false_pos, loose.true_pos) == (10, 5, 1, 5)
    assert (strict.false_pos, strict.true_pos, strict.unsure) == (0, 0, 1)
    rates = bench._rates(loose)
    assert rates["fp"] == pytest.approx(10.0)
    assert rates["recall"] == pytest.approx(100.0)
    table = bench.table(results)
    assert "| fake | **all** | 10 | 5 | 10.00% (1) | 100.00% |" in table
    assert "| fake strict | **all** | 10 | 5 | 0.00% (0) | 0.00% |" in table


def test_unknown_engine_is_one_line_error(bench: ModuleType, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    corpus = make_corpus(tmp_path, ham=5, spam=5)
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--corpus", str(corpus), "--engines", "builtin,bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("unknown engine bogus (known: builtin, bogofilter, spamassassin)")
