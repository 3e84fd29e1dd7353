"""Regenerate the reference part of docs/hooks.md from the code: the public modules
(``ie_core.PUBLIC_MODULES``), the stages the installed plugins register, and a section per
hook from ``ie_core/hookspecs.py`` (its docstrings are Markdown).

    python docs/gen_hooks.py          # rewrite docs/hooks.md
    python docs/gen_hooks.py --check  # exit 1 when docs/hooks.md is stale

Everything above the marker line in docs/hooks.md is written by hand and kept.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
from pathlib import Path

from ie_core import PUBLIC_MODULES, create_app, hookspecs
from ie_core.stages import Stage

HOOKS_MD = Path(__file__).resolve().parent / "hooks.md"
MARKER = ("<!-- Generated below by docs/gen_hooks.py from ie_core/hookspecs.py and the "
          "registered stages: edit those and run it. -->")


def hook_sections() -> list[str]:
    sections = []
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("ie_"):
            continue
        params = ", ".join(inspect.signature(fn).parameters)
        returns = inspect.signature(fn).return_annotation
        kind = "first result" if getattr(fn, "ie_spec", {}).get("firstresult") else "collect"
        doc = inspect.cleandoc(fn.__doc__ or "")
        sections.append((inspect.getsourcelines(fn)[1],
                         f"### `{name}`\n\n`{name}({params}) -> {returns}` ({kind}). {doc}\n"))
    return [text for _, text in sorted(sections)]


def stage_rows() -> list[str]:
    """One table row per stage the installed plugins register, in the default order."""
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(None, overrides={"ie.data_dir": data_dir})
        try:
            found: list[tuple[Stage, str]] = []
            for impl in app.hooks.pm.hook.ie_stages.get_hookimpls():
                found.extend((stage, impl.plugin_name) for stage in impl.function(app=app))
        finally:
            app.close()
    found.sort(key=lambda item: (item[0].phase, item[0].priority, item[0].name))
    rows = []
    for stage, plugin in found:
        directions = ", ".join(sorted(d.value for d in stage.directions))
        rows.append(f"| `{stage.name}` | {plugin} | {stage.phase.label} | {stage.priority} "
                    f"| {directions} | {stage.description} |")
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
    manual = current.split(MARKER, 1)[0].rstrip()
    return manual + "\n\n" + generated()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when stale")
    args = parser.parse_args(argv)
    current = HOOKS_MD.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("docs/hooks.md is stale: run python docs/gen_hooks.py", file=sys.stderr)
            return 1
        return 0
    HOOKS_MD.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
