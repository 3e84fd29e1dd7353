"""Alembic revisions of the blocklist plugin: a branch of its own, found through
``ie_migration_locations``."""
