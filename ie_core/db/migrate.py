"""Alembic, driven from code: core's revisions ship in the ``ie_migrations`` package,
each plugin's next to the plugin (the ``ie_migration_locations`` hook).

Every plugin keeps its revisions on a branch of its own (``branch_labels``) that starts
from a core revision; everything here works on *heads*, so all branches are upgraded.
The locations of every installed plugin are used, disabled ones included: a database's
version rows then always name revisions ie knows, whatever is switched off.
"""

from __future__ import annotations

import functools
import os
from importlib.resources import files

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ie_core.db.session import Database
from ie_core.errors import SchemaBehindError


@functools.cache
def version_locations() -> tuple[str, ...]:
    """Core's revision folder, then every installed plugin's (read once per process)."""
    from ie_core.pluginmanager import make_plugin_manager

    core = str(files("ie_migrations").joinpath("versions"))
    found = [core]
    for locations in make_plugin_manager().hook.ie_migration_locations():
        found.extend(str(loc) for loc in locations if str(loc) not in found)
    return tuple(found)


def alembic_config(db: Database) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(files("ie_migrations")))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(version_locations()))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    cfg.attributes["engine"] = db.engine
    return cfg


def upgrade(db: Database, target: str = "heads") -> None:
    cfg = alembic_config(db)
    _refuse_unknown(db, ScriptDirectory.from_config(cfg))
    command.upgrade(cfg, target)


def downgrade(db: Database, target: str = "base") -> None:
    command.downgrade(alembic_config(db), target)


def script_heads(db: Database) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(db)).get_heads())


def current_heads(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def _refuse_unknown(db: Database, script: ScriptDirectory) -> None:
    """A version row no installed revision explains (its plugin was uninstalled) would
    stop Alembic with a traceback: say what it is instead."""
    known = {rev.revision for rev in script.walk_revisions()}
    unknown = current_heads(db) - known
    if unknown:
        raise SchemaBehindError(
            "the database has revisions that no installed plugin provides: "
            + ", ".join(sorted(unknown)) + " (was a plugin uninstalled? install it again "
            "to upgrade or check the schema)")


def check(db: Database) -> None:
    """Raise :class:`SchemaBehindError` unless the database is at every head."""
    _refuse_unknown(db, ScriptDirectory.from_config(alembic_config(db)))
    current, wanted = current_heads(db), script_heads(db)
    if current != wanted:
        state = "empty" if not current else "behind (at " + ", ".join(sorted(current)) + ")"
        raise SchemaBehindError(
            f"database schema is {state}; run 'ie-config db upgrade' to bring it to "
            + ", ".join(sorted(wanted)))
