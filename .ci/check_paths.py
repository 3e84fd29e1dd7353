#!/usr/bin/env python3
"""Fail when a tracked file names an absolute path of a development machine.

Such a path (a fixed virtual environment, a checkout folder, a home folder) passes on
the machine where it was written and fails everywhere else.  Programs are found next to
``sys.executable`` and data paths come from the environment instead.  A hosting
account's web root such as ``/home/shop/public_html`` is data, not a machine path, and
is allowed.

Run from anywhere: ``python3 .ci/check_paths.py``; prints one line per hit, exits 1.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = r"(?<![\w.~$-])"  # not part of a relative path, a URL or a variable
PATTERNS = {
    "a virtual environment at a fixed place": re.compile(START + r"/[\w./-]*?\.?venv\d*/bin/"),
    "this workplace's folders": re.compile(START + r"/work/"),
    "root's home folder": re.compile(START + r"/root/"),
    "a macOS home folder": re.compile(START + r"/Users/\w"),
    "a developer's checkout in a home folder": re.compile(
        START + r"/home/[\w.-]+/(?:\.?venv|src|git|code|projects?|repos?|work|dev)\b"),
}
SKIP = {".ci/check_paths.py"}  # names the patterns it looks for


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], check=True,
                         capture_output=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name and name not in SKIP]


def main() -> int:
    hits = 0
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in PATTERNS.items():
                if pattern.search(line):
                    hits += 1
                    print(f"{path.relative_to(ROOT)}:{number}: names {what}: {line.strip()[:120]}")
    if hits:
        print(f"check_paths: {hits} line(s) name a development machine's path; find programs "
              "next to sys.executable and take data paths from the environment", file=sys.stderr)
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
