"""Alembic revisions of the web plugin: a branch of its own, found through
``ie_migration_locations``."""
