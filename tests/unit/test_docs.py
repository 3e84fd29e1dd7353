"""Every hook and every configuration key is documented (like datasette's test_docs)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ie_core import PUBLIC_MODULES, hookspecs
from ie_core.config import CORE_KEYS
from ie_core.pluginmanager import Hooks, make_plugin_manager

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _all_docs() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("**/*.md")))


def _hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith("ie_"))


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_is_documented(hook: str) -> None:
    text = (DOCS / "hooks.md").read_text(encoding="utf-8")
    assert re.search(rf"^##+ `?{hook}\b", text, re.M), f"docs/hooks.md has no section for {hook}"


def _all_keys():
    return [*CORE_KEYS, *Hooks(make_plugin_manager()).config_keys()]


@pytest.mark.parametrize("key", _all_keys(), ids=lambda k: k.dotted)
def test_every_config_key_is_documented_with_its_default(key) -> None:
    text = _all_docs()
    rows = [line for line in text.splitlines() if f"`{key.dotted}`" in line and "|" in line]
    assert rows, f"no table row in docs/ documents {key.dotted}"
    default = key.default if isinstance(key.default, str) else json.dumps(key.default)
    shown = f'`"{default}"`' if isinstance(key.default, str) else f"`{default}`"
    assert any(shown in row for row in rows), f"{key.dotted}: default {shown} not documented"


def _gen_hooks():
    spec = importlib.util.spec_from_file_location("gen_hooks", DOCS / "gen_hooks.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


def test_the_hook_reference_is_generated_from_the_code() -> None:
    """docs/hooks.md's reference part comes from the hookspecs' docstrings, the stages
    the plugins register and ``PUBLIC_MODULES`` (docs/gen_hooks.py): it cannot drift."""
    gen = _gen_hooks()
    current = (DOCS / "hooks.md").read_text(encoding="utf-8")
    assert gen.MARKER in current
    assert gen.render(current) == current, "docs/hooks.md is stale: run python docs/gen_hooks.py"
    for name in PUBLIC_MODULES:
        assert f"- `{name}`" in current
    for spec in _hook_names():
        doc = inspect.cleandoc(getattr(hookspecs, spec).__doc__)
        assert doc.split("\n\n")[0] in current, spec


def test_gen_hooks_check_names_what_is_stale_and_write_mode_keeps_the_introduction(
        tmp_path) -> None:
    script = [sys.executable, str(DOCS / "gen_hooks.py")]
    copy = tmp_path / "hooks.md"
    text = (DOCS / "hooks.md").read_text(encoding="utf-8")
    intro, reference = text.split(_gen_hooks().MARKER, 1)
    stale = reference.replace("Revision ids must be", "Revision ids should be")
    assert stale != reference
    copy.write_text(intro + "A line written by hand.\n\n" + _gen_hooks().MARKER + stale)

    out = subprocess.run([*script, "--check", "--file", str(copy)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and out.stdout == ""
    [line] = out.stderr.splitlines()
    assert "is stale: 1 line(s) differ" in line and "(under `ie_migration_locations`)" in line

    out = subprocess.run([*script, "--file", str(copy)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    written = copy.read_text(encoding="utf-8")
    assert written.startswith(intro.rstrip() + "\n\nA line written by hand.\n\n")
    assert written.split(_gen_hooks().MARKER, 1)[1] == reference
    assert subprocess.run([*script, "--check", "--file", str(copy)],
                          timeout=60).returncode == 0


def test_the_sample_grafana_dashboard_is_valid_json_over_real_metrics() -> None:
    text = (DOCS / "monitoring.md").read_text(encoding="utf-8")
    block = text.split("## Grafana", 1)[1].split("```json\n", 1)[1].split("\n```", 1)[0]
    dashboard = json.loads(block)
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    documented = set(re.findall(r"^\| `(ie_\w+)`", text, re.M))
    used = {re.sub(r"_(bucket|count|sum)$", "", m) for m in re.findall(r"ie_\w+", exprs)}
    assert used <= documented, used - documented
