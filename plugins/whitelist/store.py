"""Reading and changing the whitelists."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select

from ie_core import App, NotFound
from ie_core.changes import bump, track

from .addresses import lookup_candidates
from .models import WhitelistEntry

COUNTER = "whitelist"
"""The change counter of every whitelist (:mod:`ie_core.changes`): the lists are cached
per process, whole, and read again after a change."""
track(WhitelistEntry, COUNTER)


def is_listed(app: App, kind: str, address: str) -> bool:
    return matching_entry(app, kind, address) is not None


def matching_entry(app: App, kind: str, address: str) -> str | None:
    """The most specific entry on ``kind`` that covers ``address`` (on ``authuser``,
    which holds addresses only, the address itself)."""
    candidates = lookup_candidates(address)
    if kind == "authuser":
        candidates = [c for c in candidates if "@" in c]
    if not candidates:
        return None
    listed = app.cached(COUNTER, f"whitelist.{kind}", lambda: frozenset(entries(app, kind)))
    return next((c for c in candidates if c in listed), None)


def listed_among(app: App, kind: str, addresses: Sequence[str]) -> set[str]:
    """The addresses of ``addresses`` that an entry on ``kind`` covers (as
    :func:`is_listed`), in one query per 500 candidates."""
    wanted = {a: [c for c in lookup_candidates(a) if kind != "authuser" or "@" in c]
              for a in dict.fromkeys(addresses)}
    candidates = sorted({c for cs in wanted.values() for c in cs})
    found: set[str] = set()
    with app.db.session() as s:
        for start in range(0, len(candidates), 500):
            found.update(s.scalars(select(WhitelistEntry.value).where(
                WhitelistEntry.kind == kind,
                WhitelistEntry.value.in_(candidates[start:start + 500]))))
    return {a for a, cs in wanted.items() if found.intersection(cs)}


def entries(app: App, kind: str) -> list[str]:
    with app.db.reading() as s:
        return list(s.scalars(select(WhitelistEntry.value).where(WhitelistEntry.kind == kind)
                              .order_by(WhitelistEntry.value)))


def add(app: App, kind: str, values: Sequence[str]) -> None:
    with app.db.session() as s:
        present = set(s.scalars(select(WhitelistEntry.value).where(
            WhitelistEntry.kind == kind, WhitelistEntry.value.in_(values))))
        for value in dict.fromkeys(values):
            if value not in present:
                s.add(WhitelistEntry(kind=kind, value=value, created_at=app.clock.now()))


def remove(app: App, kind: str, values: Sequence[str]) -> None:
    """Remove every value, or nothing when one of them is not on the list."""
    with app.db.session() as s:
        present = set(s.scalars(select(WhitelistEntry.value).where(
            WhitelistEntry.kind == kind, WhitelistEntry.value.in_(values))))
        missing = [v for v in values if v not in present]
        if missing:
            raise NotFound(f"not on the {kind} whitelist: {', '.join(missing[:5])}")
        s.execute(delete(WhitelistEntry).where(WhitelistEntry.kind == kind,
                                               WhitelistEntry.value.in_(values)))
        bump(s, COUNTER)  # a bulk delete: not counted by track()
