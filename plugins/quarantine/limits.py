"""Per-account quarantine settings and the defaults they fall back to.

The defaults (``quarantine-defaults``) live in the run-time settings table; an
account's own values in ``quarantine_accounts`` (``None`` there: use the default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ie_core import App
from ie_core.db.models import Account

from .models import (
    EVICTED,
    RELEASED,
    RELEASING,
    HeldMessage,
    QuarantineAccount,
    QuarantineLog,
)

STORAGE_KEY = "quarantine.storage_capacity_mb"
RELEASES_KEY = "quarantine.releases_limit"
DEFAULT_STORAGE_MB = 100
DEFAULT_RELEASES = 5
MB = 1024 * 1024
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Defaults:
    storage_capacity_mb: int
    releases_limit: int

    @property
    def limit_bytes(self) -> int:
        return self.storage_capacity_mb * MB


def defaults(app: App) -> Defaults:
    storage = app.settings.get(STORAGE_KEY)
    releases = app.settings.get(RELEASES_KEY)
    return Defaults(DEFAULT_STORAGE_MB if storage is None else int(storage),
                    DEFAULT_RELEASES if releases is None else int(releases))


ACCOUNTS = "quarantine_accounts"
"""The lock kind of quarantine account rows in the shared write transaction
(``app.db.group``): a hold locks its account's row there."""


def lock_account(s: Session, app: App, name: str) -> QuarantineAccount:
    """The account's row, created if missing, locked until the transaction ends
    (``FOR UPDATE`` on PostgreSQL; SQLite transactions already hold the write lock)."""
    lock_accounts(s, app.clock.now(), [name])
    return s.scalars(select(QuarantineAccount).where(QuarantineAccount.name == name)
                     .execution_options(populate_existing=True)).one()


def lock_accounts(s: Session, now: datetime, names: Sequence[str]) -> None:
    """Lock the accounts' rows in name order, creating (and then locking) those that are
    missing (the locker of :data:`ACCOUNTS`; ``names`` come sorted).  A row once created
    is never taken away while it has messages, so the usual case is one statement."""
    found = set(_lock_rows(s, names))
    missing = [name for name in names if name not in found]
    if missing:
        _create_accounts(s, now, missing)
        _lock_rows(s, missing)


def _lock_rows(s: Session, names: Sequence[str]) -> list[str]:
    return list(s.scalars(select(QuarantineAccount.name)
                          .where(QuarantineAccount.name.in_(names))
                          .order_by(QuarantineAccount.name).with_for_update()))


def _create_accounts(s: Session, now: datetime, names: Sequence[str]) -> None:
    """The accounts' rows (ie's and the quarantine's), where missing."""
    dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
    for table, extra in ((Account.__table__, {}),
                         (QuarantineAccount.__table__, {"state": "active"})):
        s.execute(dialect.insert(table).values([{"name": name, "created_at": now, **extra}
                                                for name in names]).on_conflict_do_nothing())


def releases_in_last_hour(s: Session, account: str, now: datetime) -> int:
    """Releases that count against the account's limit: done in the last hour by a
    non-root caller, plus those a non-root caller is sending right now."""
    done = s.scalar(select(func.count()).select_from(QuarantineLog).where(
        QuarantineLog.account == account, QuarantineLog.action == RELEASED,
        QuarantineLog.limited.is_(True), QuarantineLog.at > now - HOUR))
    sending = s.scalar(select(func.count()).select_from(HeldMessage).where(
        HeldMessage.account == account, HeldMessage.state == RELEASING,
        HeldMessage.claim_limited.is_(True)))
    return int(done or 0) + int(sending or 0)


def evicted_by_account(s: Session, now: datetime, accounts: Sequence[str] | None = None
                       ) -> dict[str, int]:
    """Messages evicted in the last hour, per account (or of ``accounts``), in one query."""
    query = (select(QuarantineLog.account, func.count())
             .where(QuarantineLog.action == EVICTED, QuarantineLog.at > now - HOUR)
             .group_by(QuarantineLog.account))
    if accounts is not None:
        query = query.where(QuarantineLog.account.in_(accounts))
    return {name: int(n) for name, n in s.execute(query)}

