"""Alembic revisions of the incoming plugin: a branch of its own, found through
``ie_migration_locations``."""
