"""Alembic, driven from code: the scripts ship in the ``ie_migrations`` package.

Plugins may keep their revisions on branches of their own (``branch_labels``) that start
from a core revision; everything here works on *heads*, so all branches are upgraded.
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ie_core.db.session import Database
from ie_core.errors import SchemaBehindError


def alembic_config(db: Database) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(files("ie_migrations")))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    cfg.attributes["engine"] = db.engine
    return cfg


def upgrade(db: Database, target: str = "heads") -> None:
    command.upgrade(alembic_config(db), target)


def downgrade(db: Database, target: str = "base") -> None:
    command.downgrade(alembic_config(db), target)


def script_heads(db: Database) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(db)).get_heads())


def current_heads(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def check(db: Database) -> None:
    """Raise :class:`SchemaBehindError` unless the database is at every head."""
    current, wanted = current_heads(db), script_heads(db)
    if current != wanted:
        state = "empty" if not current else "behind (at " + ", ".join(sorted(current)) + ")"
        raise SchemaBehindError(
            f"database schema is {state}; run 'ie-config db upgrade' to bring it to "
            + ", ".join(sorted(wanted)))
