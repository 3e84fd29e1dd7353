"""Alembic revisions of the ratelimit plugin: a branch of its own, found through
``ie_migration_locations``."""
