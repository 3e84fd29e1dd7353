"""Where a released message goes: the direction it was held in decides.

An outgoing hold goes back to the MTA's outgoing reinjection port (``filter.reinject``,
on to the Internet); an incoming hold to the incoming one (``filter.incoming_reinject``,
on to Dovecot), never out to the Internet.
"""

from __future__ import annotations

from ie_core import App
from ie_core.smtp.reinject import Reinjector

from .models import INCOMING

KEYS = {INCOMING: "filter.incoming_reinject"}
DEFAULT_KEY = "filter.reinject"


class Reinjectors:
    """One reinjection pool per direction, opened when first needed."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._pools: dict[str, Reinjector] = {}

    def for_direction(self, direction: str) -> Reinjector:
        key = KEYS.get(direction, DEFAULT_KEY)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = Reinjector.from_config(self.app, key)
        return pool

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
