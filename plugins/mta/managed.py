"""Regions of a configuration file that ie manages, marked so they can be taken out exactly.

A region is a run of whole lines between a begin and an end marker comment::

    # >>> ie-filter: added by ie-config enable, removed by ie-config disable
    ...lines ie added...
    # ie-filter-orig: <an original line ie replaced, kept byte for byte>
    # <<< ie-filter

:func:`strip` removes every region and puts the original lines back, so
``strip(wire(text)) == text`` for any text: that is how ``ie-config disable`` restores a
file byte for byte even after the admin edited other parts of it.  Every format ie edits
(Postfix main.cf/master.cf, Exim's configuration, TOML) reads ``#`` lines as comments,
also between the continuation lines of one entry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

BEGIN = "# >>> ie-filter: added by ie-config enable, removed by ie-config disable"
BEGIN_NO_EOL = "# >>> ie-filter: added by ie-config enable (the file had no final newline)"
BEGIN_NEW_FILE = "# >>> ie-filter: added by ie-config enable (the file did not exist)"
END = "# <<< ie-filter"
ORIG = "# ie-filter-orig: "

_BEGIN = re.compile(r"^[ \t]*# >>> ie-filter\b")
_END = re.compile(r"^[ \t]*# <<< ie-filter\b")
_ORIG = re.compile(r"^[ \t]*# ie-filter-orig: ")


class RegionError(ValueError):
    """Markers that do not pair up (someone edited them by hand)."""


def region(lines: Sequence[str], indent: str = "", replaced: Sequence[str] = ()) -> str:
    """The text of one region: ``lines`` (without line ends) and the ``replaced`` original
    lines (with their line ends) kept as comments."""
    out = [indent + BEGIN + "\n"]
    out += [indent + ORIG + line for line in replaced]
    out += [line + "\n" for line in lines]
    out.append(indent + END + "\n")
    return "".join(out)


def append(text: str, lines: Sequence[str]) -> str:
    """``text`` with a region holding ``lines`` at its end."""
    if text and not text.endswith("\n"):
        return text + "\n" + region(lines).replace(BEGIN, BEGIN_NO_EOL, 1)
    return text + region(lines)


def new_file(lines: Sequence[str]) -> str:
    """The text of a file ie creates: one region holding ``lines``, marked so that
    :func:`created` knows the file can be removed once the region is taken out."""
    return region(lines).replace(BEGIN, BEGIN_NEW_FILE, 1)


def created(text: str) -> bool:
    """Did ``ie-config enable`` create this file, with nothing else added since?"""
    return text.startswith(BEGIN_NEW_FILE + "\n") and strip(text) == ""


def has_regions(text: str) -> bool:
    return any(_BEGIN.match(line) for line in text.splitlines())


def strip(text: str) -> str:
    """``text`` without any region, original lines restored exactly."""
    out: list[str] = []
    inside = False
    no_eol = False
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        if _BEGIN.match(line):
            if inside:
                raise RegionError(f"line {number}: ie-filter region opened twice")
            inside = True
            no_eol = "no final newline" in line
            continue
        if _END.match(line):
            if not inside:
                raise RegionError(f"line {number}: ie-filter region closed but never opened")
            inside = False
            continue
        if not inside:
            out.append(line)
        elif m := _ORIG.match(line):
            out.append(line[m.end():])
    if inside:
        raise RegionError("an ie-filter region is never closed")
    result = "".join(out)
    if no_eol and result.endswith("\n"):
        result = result[:-1]
    return result
