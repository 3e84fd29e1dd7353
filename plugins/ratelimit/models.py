"""Send-limit tables: sender objects, one row per counted send, and mail held only for
``ratelimit`` (what auto-release may re-send)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ie_core.db import Base, new_id

ACCOUNT = "account"
DOMAIN = "domain"
SENDER_EMAIL = "sender_email"
SCRIPT = "script"
SO_TYPES = (ACCOUNT, DOMAIN, SENDER_EMAIL, SCRIPT)

SENT = "sent"
QUARANTINED = "quarantined"

WAITING = "waiting"
RELEASING = "releasing"


class SenderObject(Base):
    """An account, domain, sender email or script.  ``id`` never changes; ``parent_id``
    places it in the stats tree (domain and script -> account, sender email -> domain).
    ``limit_override`` is the per-object limit (``None``: the server default).
    ``limited_at`` is when it last went over its limit (cleared when mail passes).

    ``window_messages`` and ``window_recipients`` are the counted ``sent`` messages and
    their recipients in the 60 minutes before ``window_at``: kept up to date under the
    row's lock (a send adds, a send that did not leave or that fell out of the window
    takes away), so checking a limit never sums the hour's rows (``None``: not counted
    yet, the next check sums them once).  No counted send in that window is older than
    ``window_oldest`` (``None``: not known): while it is inside the window, nothing can
    have left it and the check reads no send rows at all."""

    __tablename__ = "ratelimit_objects"
    __table_args__ = (UniqueConstraint("so_type", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    so_type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(1024))
    parent_id: Mapped[str | None] = mapped_column(String(36))
    limit_override: Mapped[int | None] = mapped_column(Integer)
    limited_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    window_messages: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    window_recipients: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    window_at: Mapped[datetime | None]
    window_oldest: Mapped[datetime | None]


class SendRecord(Base):
    """One message counted for one object.  Only ``sent`` rows with ``counted`` use the
    allowance; whitelisted mail is recorded with ``counted = False`` for the stats."""

    __tablename__ = "ratelimit_sends"
    __table_args__ = (
        Index("ix_ratelimit_sends_object_at", "object_id", "at"),
        Index("ix_ratelimit_sends_at", "at"),
        Index("ix_ratelimit_sends_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    object_id: Mapped[str] = mapped_column(String(36), ForeignKey(
        "ratelimit_objects.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))
    recipients: Mapped[int] = mapped_column(Integer)
    counted: Mapped[bool] = mapped_column(Boolean, default=True)


class RateHeld(Base):
    """A message the quarantine holds for ``ratelimit`` alone, oldest first for
    auto-release.  ``state`` is ``releasing`` while one release has claimed it;
    ``attempts`` counts releases the quarantine refused (it is given up after a few)."""

    __tablename__ = "ratelimit_held"
    __table_args__ = (Index("ix_ratelimit_held_state_held_at", "state", "held_at"),)

    held_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(36))
    account: Mapped[str] = mapped_column(String(64))
    object_ids: Mapped[list[str]]
    recipients: Mapped[int] = mapped_column(Integer)
    held_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default=WAITING)
    claimed_at: Mapped[datetime | None]
    next_try_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
