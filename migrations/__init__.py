"""Alembic scripts for ie (installed as ``ie_migrations``)."""
