"""The notifier's tables: what it was told about held mail, its digests, and the
notification ledger that makes every notice go out once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ie_core.db import Base

# Ledger states (docs/notifications.md, "Exactly once"):
PENDING = "pending"          # planned, not yet tried (or waiting for a retry)
SENDING = "sending"          # claimed; the SMTP transaction is open, no final dot sent yet
HANDED_OVER = "handed_over"  # committed just before the final dot: the MTA has it
SENT = "sent"                # the MTA answered 250 to the final dot
FAILED = "failed"            # a 5xx, or too many 4xx: recorded, not retried

_ID = BigInteger().with_variant(Integer, "sqlite")


class Notification(Base):
    """One message to one recipient; ``key`` names what it is about, once."""

    __tablename__ = "notify_notifications"
    __table_args__ = (Index("ix_notify_notifications_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    account: Mapped[str | None] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(255))
    message: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_reply: Mapped[str | None] = mapped_column(String(512))


class HeldItem(Base):
    """A held message as the ``held`` event described it, and which digests listed it."""

    __tablename__ = "notify_held"
    __table_args__ = (Index("ix_notify_held_account_state", "account", "state"),)

    held_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    held_at: Mapped[datetime]
    sender: Mapped[str] = mapped_column(String(1024))
    recipients: Mapped[list[str]]
    subject: Mapped[str] = mapped_column(String(2048))
    reasons: Mapped[list[str]]
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    direction: Mapped[str] = mapped_column(String(16), default="outgoing",
                                           server_default="outgoing")
    score: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    state: Mapped[str] = mapped_column(String(16), default="held")
    owner_digest: Mapped[int | None] = mapped_column(Integer)
    admin_digest: Mapped[int | None] = mapped_column(Integer)


class DigestState(Base):
    """Per digest scope (``owner:ACCOUNT`` or ``admin``): when the last one went out."""

    __tablename__ = "notify_digests"

    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    last_sent_at: Mapped[datetime | None]
