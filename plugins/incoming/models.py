"""Tables of the incoming feature: per-account opt-out and daily counts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ie_core.db import Base


class IncomingAccount(Base):
    """An account's own switch for incoming filtering; no row means "on"."""

    __tablename__ = "incoming_accounts"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime]


class IncomingDaily(Base):
    """Incoming messages delivered per account and UTC day.

    ``spam`` and ``legitimate`` count messages the filter judged for the account;
    ``unfiltered`` counts those passed through unjudged (filtering off, the account opted
    out, every recipient whitelisted).  A message counts once per account it reached.
    """

    __tablename__ = "incoming_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    spam: Mapped[int] = mapped_column(Integer, default=0)
    legitimate: Mapped[int] = mapped_column(Integer, default=0)
    unfiltered: Mapped[int] = mapped_column(Integer, default=0)
