"""Keeping the message log to a size: rows older than ``filter.log_keep_days`` are
deleted once an hour by the daemon, a few thousand at a time so that no deletion holds
SQLite's write lock (or a long PostgreSQL transaction) while messages wait to be logged.

The log answers ``ie-cli``'s and ie-web's statistics and the duplicate check of an MTA's
retry (:func:`ie_core.processor.duplicate_reply`), so a row is never deleted before the
duplicate window has passed, whatever the setting says.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select

from ie_core.app import App
from ie_core.background import BackgroundService, periodic
from ie_core.db.models import MessageLog

log = logging.getLogger("ie.filter")

PRUNE_EVERY = 3600.0
CHUNK = 5000


def prune(app: App, chunk: int = CHUNK) -> int:
    """Delete the rows past their keep time; how many were deleted."""
    keep = max(timedelta(days=app.config.get("filter.log_keep_days")),
               timedelta(seconds=app.config.get("filter.duplicate_window")))
    cutoff = app.clock.now() - keep
    total = 0
    while True:
        with app.db.session() as s:
            old = select(MessageLog.id).where(MessageLog.received_at < cutoff).limit(chunk)
            result = s.connection().execute(delete(MessageLog).where(MessageLog.id.in_(
                old.scalar_subquery())))
            deleted = result.rowcount or 0
        total += deleted
        if deleted < chunk:
            break
    if total:
        log.info("event=message_log_pruned rows=%d before=%s", total, cutoff.isoformat())
    return total


def prune_service(app: App) -> BackgroundService:
    return periodic("message-log-prune", PRUNE_EVERY, lambda: prune(app), first=60.0)
