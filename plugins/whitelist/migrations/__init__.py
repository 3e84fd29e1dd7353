"""Alembic revisions of the whitelist plugin: a branch of its own, found through
``ie_migration_locations``."""
