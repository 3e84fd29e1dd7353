"""Alembic revisions of the quarantine plugin: a branch of its own, found through
``ie_migration_locations``."""
