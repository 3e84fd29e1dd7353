"""Run-time settings kept in the database (changed by ``ie-cli``, read per message).

Values are JSON.  Reads are cached for ``ttl`` seconds so the hot path does not query the
database for every message, yet a change applies within that time without a restart.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy.orm import Session

from ie_core.clock import Clock
from ie_core.db.models import Setting
from ie_core.db.session import Database

_MISSING = object()


class RuntimeSettings:
    def __init__(self, db: Database, clock: Clock, ttl: float = 2.0) -> None:
        self._db = db
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now - hit[0] < self._ttl:
                return default if hit[1] is _MISSING else hit[1]
        with self._db.reading() as s:
            row = s.get(Setting, key)
            value = _MISSING if row is None else row.value
        with self._lock:
            self._cache[key] = (now, value)
        return default if value is _MISSING else value

    def set(self, key: str, value: Any, session: Session | None = None) -> None:
        """Store ``value``; ``None`` removes the key so the built-in default applies."""
        if session is None:
            with self._db.session() as s:
                self._write(s, key, value)
        else:
            self._write(session, key, value)
        with self._lock:
            self._cache.pop(key, None)

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
        with self._lock:
            self._cache.clear()
