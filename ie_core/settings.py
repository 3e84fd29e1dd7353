"""Run-time settings kept in the database (changed by ``ie-cli``, read per message).

Values are JSON.  The whole table is cached per process and read again when its change
counter moved (:mod:`ie_core.changes`): the hot path does not query it for every message,
yet a change applies to the next message, in every process and on every node.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ie_core.changes import Cached, ChangeCounters, track
from ie_core.clock import Clock
from ie_core.db.models import Setting
from ie_core.db.session import Database

COUNTER = "settings"
track(Setting, COUNTER)


class RuntimeSettings:
    def __init__(self, db: Database, clock: Clock, counters: ChangeCounters) -> None:
        self._db = db
        self._clock = clock
        self._counters = counters
        self._values = self._new_cache()

    def _new_cache(self) -> Cached[dict[str, Any]]:
        return Cached(self._counters, COUNTER, self._load)

    def _load(self) -> dict[str, Any]:
        with self._db.reading() as s:
            return {k: v for k, v in s.execute(select(Setting.key, Setting.value))}

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get().get(key, default)

    def set(self, key: str, value: Any, session: Session | None = None) -> None:
        """Store ``value``; ``None`` removes the key so the built-in default applies."""
        if session is None:
            with self._db.session() as s:
                self._write(s, key, value)
        else:
            self._write(session, key, value)
        self.invalidate()

    def _write(self, s: Session, key: str, value: Any) -> None:
        row = s.get(Setting, key)
        if value is None:
            if row is not None:
                s.delete(row)
        elif row is None:
            s.add(Setting(key=key, value=value, updated_at=self._clock.now()))
        else:
            row.value = value
            row.updated_at = self._clock.now()

    def invalidate(self) -> None:
        """Forget the cached values (this process reads them again on the next get)."""
        self._values = self._new_cache()
