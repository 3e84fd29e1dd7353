"""Alembic, driven from code: core's revisions ship in the ``ie_migrations`` package,
each plugin's next to the plugin (the ``ie_migration_locations`` hook).

Every plugin keeps its revisions on a branch of its own (``branch_labels``) that starts
from a core revision.  What is *wanted* is the head of core's folder and of every loaded
plugin's folders, so a disabled plugin's tables are not created.  Alembic still reads
the folders of every installed plugin, disabled ones too: a plugin enabled once and
disabled since left version rows, and those must name revisions ie knows.

Pass the loaded plugins as ``hooks`` (``app.hooks``); without them every installed
plugin counts as loaded.  A database made by an earlier release needs no translation:
the revisions kept their ids and their graph when they moved next to their plugins.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ie_core.db.session import Database
from ie_core.errors import ConfigError, SchemaBehindError

if TYPE_CHECKING:
    from ie_core.pluginmanager import Hooks

CORE = "core"


def core_location() -> str:
    return str(files("ie_migrations").joinpath("versions"))


@functools.cache
def _installed_locations() -> tuple[tuple[str, str], ...]:
    """(plugin, folder) for every installed plugin, disabled ones included (read once per
    process; a plugin that cannot be imported is left out)."""
    from ie_core.pluginmanager import Hooks, make_plugin_manager

    return tuple(Hooks(make_plugin_manager(skip_broken=True)).migration_locations())


def _locations(hooks: Hooks | None) -> tuple[list[str], list[str]]:
    """(every folder Alembic reads, the folders whose heads are wanted)."""
    loaded = [(CORE, core_location()),
              *(hooks.migration_locations() if hooks is not None else _installed_locations())]
    wanted: list[str] = []
    for plugin, folder in loaded:
        if not Path(folder).is_dir():
            raise ConfigError(f"plugin '{plugin}': its migration folder {folder} does not "
                              "exist (is the plugin installed completely?)")
        if folder not in wanted:
            wanted.append(folder)
    read = wanted + [f for _, f in _installed_locations()
                     if f not in wanted and Path(f).is_dir()]
    return read, wanted


def alembic_config(db: Database, hooks: Hooks | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(files("ie_migrations")))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(_locations(hooks)[0]))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    cfg.attributes["engine"] = db.engine
    return cfg


def wanted_heads(db: Database, hooks: Hooks | None = None) -> set[str]:
    """The newest revision of core's folder and of each loaded plugin's folders: what
    ``upgrade`` brings the database to and ``check`` requires."""
    script = ScriptDirectory.from_config(alembic_config(db, hooks))
    return _wanted(script, _locations(hooks)[1])


def _wanted(script: ScriptDirectory, folders: Sequence[str]) -> set[str]:
    """Each folder's own heads: its revisions that no other revision of the folder
    builds on (a later plugin may build on one; it stays wanted here)."""
    dirs = {Path(f).resolve() for f in folders}
    revisions = [s for s in script.walk_revisions() if Path(s.path).resolve().parent in dirs]
    ids = {s.revision for s in revisions}
    return {s.revision for s in revisions if not set(s.nextrev) & ids}


def current_heads(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def upgrade(db: Database, target: str | None = None, *, hooks: Hooks | None = None) -> None:
    """Bring the database to ``target``, by default to every wanted head (each in its
    own transaction); a revision already applied is never run again."""
    cfg = alembic_config(db, hooks)
    script = ScriptDirectory.from_config(cfg)
    current = _refuse_unknown(db, script)
    if target is not None:
        command.upgrade(cfg, target)
        return
    wanted = _wanted(script, _locations(hooks)[1])
    if wanted == set(script.get_heads()):
        command.upgrade(cfg, "heads")
        return
    for head in sorted(wanted):
        if _pending(script, {head}, current):
            command.upgrade(cfg, head)
            current = current_heads(db)


def downgrade(db: Database, target: str = "base", *, hooks: Hooks | None = None) -> None:
    command.downgrade(alembic_config(db, hooks), target)


def check(db: Database, *, hooks: Hooks | None = None) -> None:
    """Raise :class:`SchemaBehindError` unless every wanted head is applied.  Version
    rows of an installed but disabled plugin are fine, behind or not."""
    script = ScriptDirectory.from_config(alembic_config(db, hooks))
    current = _refuse_unknown(db, script)
    missing = sorted(h for h in _wanted(script, _locations(hooks)[1])
                     if _pending(script, {h}, current))
    if not current:
        raise SchemaBehindError("database schema is empty; run 'ie-config db upgrade'")
    if missing:
        raise SchemaBehindError(f"database schema is behind ({', '.join(missing)} not "
                                "applied); run 'ie-config db upgrade'")


def _pending(script: ScriptDirectory, wanted: set[str], current: set[str]) -> bool:
    """Does reaching ``wanted`` from ``current`` run any revision?"""
    return any(True for _ in script.iterate_revisions(
        tuple(sorted(wanted)), tuple(sorted(current)), implicit_base=True))


def _refuse_unknown(db: Database, script: ScriptDirectory) -> set[str]:
    """The database's heads.  A version row no installed revision explains (its plugin
    was uninstalled) would stop Alembic with a traceback: say what it is instead."""
    known = {rev.revision for rev in script.walk_revisions()}
    current = current_heads(db)
    unknown = current - known
    if unknown:
        raise SchemaBehindError(
            "the database has revisions that no installed plugin provides: "
            + ", ".join(sorted(unknown)) + " (was a plugin uninstalled? install it again "
            "to upgrade or check the schema)")
    return current
