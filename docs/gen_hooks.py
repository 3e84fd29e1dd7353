"""Regenerate the reference part of docs/hooks.md from the code: the public modules
(``ie_core.PUBLIC_MODULES``), the stages the built-in plugins register, and a section per
hook from ``ie_core/hookspecs.py`` (its docstrings are Markdown).

    python docs/gen_hooks.py          # rewrite docs/hooks.md
    python docs/gen_hooks.py --check  # exit 1 and say where when docs/hooks.md is stale

Everything above the marker line in docs/hooks.md is written by hand and kept.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import sys
import tempfile
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

from ie_core import PUBLIC_MODULES, create_app, hookspecs

HOOKS_MD = Path(__file__).resolve().parent / "hooks.md"
MARKER = ("<!-- Generated below by docs/gen_hooks.py from ie_core/hookspecs.py and the "
          "registered stages: edit those and run it. -->")
BUILT_IN = "ie_plugins"
"""The stage table lists the stages of ie's own plugins, whatever else is installed."""


class StaleError(Exception):
    """docs/hooks.md cannot be regenerated as it is."""


def hook_sections() -> list[str]:
    """One section per hookspec, in the order of ``ie_core/hookspecs.py``."""
    sections = []
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("ie_"):
            continue
        signature = inspect.signature(fn)
        params = ", ".join(signature.parameters)
        kind = "first result" if getattr(fn, "ie_spec", {}).get("firstresult") else "collect"
        doc = inspect.cleandoc(fn.__doc__ or "")
        sections.append((inspect.getsourcelines(fn)[1],
                         f"### `{name}`\n\n`{name}({params}) -> {signature.return_annotation}` "
                         f"({kind}). {doc}\n"))
    return [text for _, text in sorted(sections)]


def _phase(stage: object) -> tuple[int, str]:
    """(order, label) of a stage's phase; a Stage without phases is a check."""
    phase = getattr(stage, "phase", None)
    if not isinstance(phase, Enum):
        return 0, "check"
    return list(type(phase)).index(phase), str(getattr(phase, "label", phase.name)).lower()


def stage_rows() -> list[str]:
    """One table row per stage the built-in plugins register, in the default order."""
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "ie.toml"  # no local configuration disables a plugin here
        empty.write_text("")
        app = create_app(empty, overrides={"ie.data_dir": tmp})
        try:
            found: list[tuple[Any, str]] = []
            for impl in app.hooks.pm.hook.ie_stages.get_hookimpls():
                if not getattr(impl.plugin, "__name__", "").startswith(BUILT_IN + "."):
                    continue
                call: Callable[..., Any] = impl.function
                found.extend((stage, impl.plugin_name)
                             for stage in call(**{n: app for n in impl.argnames}))
        finally:
            app.close()
    found.sort(key=lambda item: (_phase(item[0])[0], item[0].priority, item[0].name))
    rows = []
    for stage, plugin in found:
        directions = ", ".join(sorted(d.value for d in stage.directions))
        description = getattr(stage, "description", "") or ""
        rows.append(f"| `{stage.name}` | {plugin} | {_phase(stage)[1]} | {stage.priority} "
                    f"| {directions} | {description} |")
    return rows


def generated() -> str:
    modules = "\n".join(f"- `{name}`" for name in sorted(PUBLIC_MODULES))
    return "\n".join([
        MARKER, "",
        "## Public modules", "",
        "Plugins import only these (`ie_core.PUBLIC_MODULES`; a test checks the built-in "
        "plugins):", "", modules, "",
        "## Stages", "",
        "The built-in stages, in the order they run when the configuration gives none "
        "(by phase, then priority):", "",
        "| stage | plugin | phase | priority | directions | what it does |",
        "|---|---|---|---|---|---|",
        *stage_rows(), "",
        "## Hooks", "",
        "\n".join(hook_sections()).rstrip() + "\n",
    ])


def render(current: str) -> str:
    """``current`` with everything from the marker on regenerated."""
    if MARKER not in current:
        raise StaleError("has no marker line (" + MARKER + ") to regenerate below")
    manual = current.split(MARKER, 1)[0].rstrip()
    return manual + "\n\n" + generated()


def summary(current: str, wanted: str) -> str:
    """One line: how many lines differ and in which section the first difference is."""
    old, new = current.splitlines(), wanted.splitlines()
    changed = [(i1, i2, j1, j2) for tag, i1, i2, j1, j2
               in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
               if tag != "equal"]
    count = sum(max(i2 - i1, j2 - j1) for i1, i2, j1, j2 in changed)
    first = changed[0][2] if changed else 0
    heading = next((line.lstrip("# ").strip() for line in reversed(new[:first + 1])
                    if line.startswith("#")), "the top")
    return f"{count} line(s) differ, the first at line {first + 1} (under {heading})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the file differs from what would be written")
    parser.add_argument("--file", type=Path, default=HOOKS_MD,
                        help="the file to check or rewrite (default docs/hooks.md)")
    args = parser.parse_args(argv)
    try:
        current = args.file.read_text(encoding="utf-8")
        wanted = render(current)
    except (OSError, StaleError) as err:
        print(f"gen_hooks: {args.file}: {err}", file=sys.stderr)
        return 2
    if args.check:
        if wanted != current:
            print(f"gen_hooks: {args.file} is stale: {summary(current, wanted)}; run "
                  "python docs/gen_hooks.py", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.file.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
