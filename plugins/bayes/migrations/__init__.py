"""Alembic revisions of the bayes plugin: a branch of its own, found through
``ie_migration_locations``."""
