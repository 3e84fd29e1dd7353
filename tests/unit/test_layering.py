"""The plugin boundary: plugins use only the core's public modules, the core no plugin."""

from __future__ import annotations

import ast
from pathlib import Path

from ie_core import PUBLIC_MODULES

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(folder: Path) -> dict[str, set[str]]:
    """``{module imported: {files importing it}}`` for every .py file under ``folder``."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else _from_names(node) if isinstance(node, ast.ImportFrom) and node.module
                     and node.level == 0 else [])
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def _from_names(node: ast.ImportFrom) -> list[str]:
    """``from pkg import name``: ``pkg.name`` where that is a module of ours, else ``pkg``."""
    assert node.module is not None
    folder = ROOT / node.module.replace(".", "/")
    modules = [f"{node.module}.{a.name}" for a in node.names
               if (folder / f"{a.name}.py").is_file() or (folder / a.name).is_dir()]
    return modules or [node.module]


def test_plugins_use_only_the_public_core_modules():
    used = {name: files for name, files in imported_modules(ROOT / "plugins").items()
            if name == "ie_core" or name.startswith("ie_core.")}
    private = {name: sorted(files) for name, files in used.items() if name not in PUBLIC_MODULES}
    assert not private, private
    assert "ie_core.classifier" in used  # the walk did see the plugins' imports


def test_the_core_never_imports_a_plugin():
    used = imported_modules(ROOT / "ie_core")
    assert not {name for name in used if name.split(".")[0] == "ie_plugins"}
    assert "ie_core.config" in used
