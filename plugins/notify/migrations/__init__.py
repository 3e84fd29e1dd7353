"""Alembic revisions of the notify plugin: a branch of its own, found through
``ie_migration_locations``."""
