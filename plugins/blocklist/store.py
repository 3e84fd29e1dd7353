"""Reading and changing the blocklists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select

from ie_core import App, NotFound
from ie_core.changes import bump, track

from .models import BlocklistEntry

COUNTER = "blocklist"
track(BlocklistEntry, COUNTER)


@dataclass(frozen=True)
class Entry:
    value: str
    account: str  # "" for the whole server
    action: str  # "refuse", "junk" or "" (the server's default)

    @property
    def type(self) -> str:
        return "email" if "@" in self.value else "domain"


def matching(app: App, kind: str, candidates: Sequence[str],
             accounts: Iterable[str] | None = None) -> list[Entry]:
    """The entries of ``kind`` whose value is one of ``candidates`` and that hold for the
    server or one of ``accounts`` (any account when ``None``).  The list is cached whole
    per process and read again after a change (:mod:`ie_core.changes`), so a hostile
    From field with thousands of candidates costs dictionary lookups, not queries."""
    by_value = app.cached(COUNTER, f"blocklist.{kind}", lambda: _by_value(app, kind))
    scopes = None if accounts is None else {"", *accounts}
    return [e for value in dict.fromkeys(candidates) for e in by_value.get(value, ())
            if scopes is None or e.account in scopes]


def _by_value(app: App, kind: str) -> dict[str, list[Entry]]:
    table: dict[str, list[Entry]] = {}
    for entry in entries(app, kind, None):
        table.setdefault(entry.value, []).append(entry)
    return table


def entries(app: App, kind: str, account: str | None) -> list[Entry]:
    """The entries of one scope (``""``: the server's), or of all when ``None``."""
    query = select(BlocklistEntry.value, BlocklistEntry.account, BlocklistEntry.action) \
        .where(BlocklistEntry.kind == kind)
    if account is not None:
        query = query.where(BlocklistEntry.account == account)
    with app.db.reading() as s:
        rows = s.execute(query.order_by(BlocklistEntry.account, BlocklistEntry.value)).all()
    return [Entry(*row) for row in rows]


def add(app: App, kind: str, account: str, values: Sequence[str], action: str) -> None:
    """Add each value (an entry already there takes the new action)."""
    with app.db.session() as s:
        present = {row.value: row for row in s.scalars(select(BlocklistEntry).where(
            BlocklistEntry.kind == kind, BlocklistEntry.account == account,
            BlocklistEntry.value.in_(values)))}
        for value in dict.fromkeys(values):
            if value in present:
                present[value].action = action
            else:
                s.add(BlocklistEntry(kind=kind, account=account, value=value, action=action,
                                     created_at=app.clock.now()))


def remove(app: App, kind: str, account: str, values: Sequence[str]) -> None:
    """Remove every value, or nothing when one of them is not on the list."""
    with app.db.session() as s:
        present = set(s.scalars(select(BlocklistEntry.value).where(
            BlocklistEntry.kind == kind, BlocklistEntry.account == account,
            BlocklistEntry.value.in_(values))))
        missing = [v for v in values if v not in present]
        if missing:
            where = f" of account {account}" if account else ""
            raise NotFound(f"not on the {kind} blocklist{where}: {', '.join(missing[:5])}")
        s.execute(delete(BlocklistEntry).where(
            BlocklistEntry.kind == kind, BlocklistEntry.account == account,
            BlocklistEntry.value.in_(values)))
        bump(s, COUNTER)  # a bulk delete: not counted by track()
