"""Map the fixed top-level folders to ie_-prefixed import names.

Nothing generic ("plugins", "cli", "migrations") may land in site-packages, so each
folder is installed under its own ``ie_`` name.  Sub-packages are found by walking the
folders, so adding a plugin package needs no edit here.
"""

from pathlib import Path

from setuptools import setup

PACKAGE_DIRS = {
    "ie_core": "ie_core",
    "ie_plugins": "plugins",
    "ie_cli": "cli",
    "ie_migrations": "migrations",
    "ie_sieve": "sieve",
}


def find_packages() -> list[str]:
    found = []
    for name, folder in PACKAGE_DIRS.items():
        for init in sorted(Path(folder).rglob("__init__.py")):
            parts = init.parent.relative_to(folder).parts
            found.append(".".join((name, *parts)))
    return found


setup(packages=find_packages(), package_dir=PACKAGE_DIRS)
