"""Per-day figures of outgoing mail for the Statistics page, from the message log (one row
per message ie handled); incoming figures are the incoming plugin's daily counters."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import case, func, select

from ie_core import App
from ie_core.db.models import MessageLog

OUTGOING_KINDS = ("sent", "held", "refused")


def days(app: App, count: int) -> list[str]:
    """The last ``count`` days (UTC, today included), oldest first, as ``YYYY-MM-DD``."""
    today = app.clock.now().astimezone(UTC).date()
    return [(today - timedelta(days=n)).isoformat() for n in range(count - 1, -1, -1)]


def outgoing_daily(app: App, count: int, account: str | None = None) -> list[dict[str, Any]]:
    """``{"date", "sent", "held", "refused"}`` per day with outgoing mail, oldest first
    (``refused``: rejected or tempfailed by ie or by the downstream MTA)."""
    first = datetime.combine(datetime.fromisoformat(days(app, count)[0]), time(), UTC)
    column = MessageLog.received_at
    if app.db.engine.dialect.name == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS...' in UTC
        day = func.substr(column, 1, 10)
    else:
        day = func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    kind = case((MessageLog.outcome == "delivered", "sent"),
                (MessageLog.outcome.like("held%"), "held"), else_="refused")
    query = (select(day, kind, func.count())
             .where(MessageLog.direction == "outgoing", column >= first)
             .group_by(day, kind))
    if account is not None:
        query = query.where(MessageLog.account == account)
    with app.db.session() as s:
        found = s.execute(query).all()
    rows: dict[str, dict[str, Any]] = {}
    for date, what, n in found:
        row = rows.setdefault(str(date), {"date": str(date), **dict.fromkeys(OUTGOING_KINDS, 0)})
        row[what] += int(n)
    return [rows[d] for d in sorted(rows)]

