"""Daily per-account counts of incoming mail: recorded after delivery, read by
``ie-cli stats incoming``."""

from __future__ import annotations

from datetime import UTC, date, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ie_core import App
from ie_plugins.incoming.models import IncomingDaily
from ie_plugins.incoming.policy import IncomingState

COUNTERS = ("spam", "legitimate", "unfiltered")


def record(app: App, state: IncomingState, day: date) -> None:
    """Count one delivered message for every account it reached."""
    with app.db.session() as s:
        for account, filtered in sorted(state.accounts().items()):
            column = "unfiltered" if not filtered else "spam" if state.junk else "legitimate"
            _increment(s, day, account, column)


def _increment(s: Session, day: date, account: str, column: str) -> None:
    values = {"day": day, "account": account, **{c: int(c == column) for c in COUNTERS}}
    table = IncomingDaily.__table__
    dialect = s.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=["day", "account"],
                                      set_={column: table.c[column] + 1})
    s.execute(stmt)


def daily(app: App, days: int, account: str | None = None) -> list[dict[str, object]]:
    """Rows of the last ``days`` days (today included), oldest first."""
    today = app.clock.now().astimezone(UTC).date()
    since = today - timedelta(days=days - 1)
    query = select(IncomingDaily).where(IncomingDaily.day >= since)
    if account is not None:
        query = query.where(IncomingDaily.account == account)
    with app.db.session() as s:
        rows = s.scalars(query.order_by(IncomingDaily.day, IncomingDaily.account)).all()
        return [{"date": r.day.isoformat(), "account": r.account, "spam": r.spam,
                 "legitimate": r.legitimate, "unfiltered": r.unfiltered} for r in rows]
