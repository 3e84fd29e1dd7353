"""Start-up time of the command lines (a benchmark, not a test).

Runs the real ``ie-cli`` (the script next to this interpreter) ``--runs`` times per
command on an empty SQLite data directory and prints the median and the fastest wall
time of each.  ``python -c pass`` is timed the same way: the interpreter's own start-up,
which no change to ie can take away (an editable install adds its import finder to it).

    python bench/startup.py --runs 15
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (
    ["version"],
    ["--help"],
    ["emails", "list", "--json"],
    ["accounts", "list", "--json"],
)


def timed(argv: list[str], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    script = str(Path(sys.executable).with_name("ie-cli"))
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "ie.toml"
        config.write_text(f'[ie]\ndata_dir = "{tmp}"\n')
        subprocess.run([str(Path(sys.executable).with_name("ie-config")), "--config",
                        str(config), "db", "upgrade"], check=True, stdout=subprocess.DEVNULL)
        rows = [("python -c pass", timed([sys.executable, "-c", "pass"], args.runs))]
        for command in COMMANDS:
            rows.append(("ie-cli " + " ".join(command),
                         timed([script, "--config", str(config), *command], args.runs)))
    print(f"| command | median ms | fastest ms |   ({args.runs} runs each)")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| `{name}` | {statistics.median(seconds) * 1000:.0f} "
              f"| {min(seconds) * 1000:.0f} |")


if __name__ == "__main__":
    main()
