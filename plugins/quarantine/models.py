"""The quarantine's tables: what is held, per-account settings, and the history of what
left the quarantine (released, deleted, evicted)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ie_core.db import Base

HELD = "held"
OUTGOING = "outgoing"
INCOMING = "incoming"
DIRECTIONS = (OUTGOING, INCOMING)
RELEASING = "releasing"  # claimed by one release; nobody else may send or delete it

ACTIVE = "active"
BLOCK = "block"
ACCOUNT_STATES = (ACTIVE, BLOCK)

# quarantine_log.action values
RELEASED = "released"
DELETED = "deleted"
EVICTED = "evicted"


class HeldMessage(Base):
    """One held message.  Its exact bytes are the file named ``id`` in the quarantine
    directory; ``reasons_key`` is the reasons list as ``,spam,winexec,`` so that a reason
    filter is a portable LIKE."""

    __tablename__ = "quarantine_messages"
    __table_args__ = (
        Index("ix_quarantine_messages_account_quarantined", "account", "quarantined_at"),
        Index("ix_quarantine_messages_quarantined_at", "quarantined_at"),
        Index("ix_quarantine_messages_direction_account", "direction", "account"),
        Index("ix_quarantine_messages_received_at", "received_at", "id"),
        Index("ix_quarantine_messages_account_received", "account", "received_at"),
        Index("ix_quarantine_messages_account_state_size", "account", "state", "size"),
        # the totals of lists filtered by a part of the reasons or the sender
        Index("ix_quarantine_messages_text_filters", "reasons_key", "mail_from",
              "received_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16), default=OUTGOING,
                                           server_default=OUTGOING)
    """``outgoing``: held from the account's senders; ``incoming``: held for the account's
    recipients (``rcpt_tos`` are then only that account's), released to Dovecot."""
    state: Mapped[str] = mapped_column(String(16), default=HELD)
    received_at: Mapped[datetime]
    quarantined_at: Mapped[datetime]
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_tos: Mapped[list[str]]
    header_from: Mapped[str] = mapped_column(String(998))
    subject: Mapped[str] = mapped_column(String(998))
    size: Mapped[int] = mapped_column(BigInteger)
    reasons: Mapped[list[str]]
    reasons_key: Mapped[str] = mapped_column(String(255))
    score: Mapped[float] = mapped_column(Float, default=0.0)
    script_raw: Mapped[str | None] = mapped_column(String(1024))
    script_domain: Mapped[str | None] = mapped_column(String(255))
    script_path: Mapped[str | None] = mapped_column(String(1024))
    claimed_at: Mapped[datetime | None]
    claim_limited: Mapped[bool] = mapped_column(Boolean, default=False)


class QuarantineAccount(Base):
    """An account's quarantine subspace: state, overrides (``None``: the default) and the
    bytes its messages use."""

    __tablename__ = "quarantine_accounts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    limit_bytes: Mapped[int | None] = mapped_column(BigInteger)
    releases_limit: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Size of the account's held and releasing messages, kept by database triggers
    (revision ``0013_quarantine_used_bytes``): never written by ie's code."""


class QuarantineLog(Base):
    """A message that left the quarantine: who took it out, when and how.

    ``limited`` marks releases made by a non-root caller (they count against the
    account's hourly release limit).
    """

    __tablename__ = "quarantine_log"
    __table_args__ = (
        Index("ix_quarantine_log_account_action_at", "account", "action", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(36))
    account: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16), default=OUTGOING,
                                           server_default=OUTGOING)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    limited: Mapped[bool] = mapped_column(Boolean, default=False)
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_tos: Mapped[list[str]]
    subject: Mapped[str] = mapped_column(String(998))
    size: Mapped[int] = mapped_column(BigInteger)
    reasons: Mapped[list[str]]
    quarantined_at: Mapped[datetime]


def log_entry(row: HeldMessage, action: str, actor: str, at: datetime,
              limited: bool = False) -> QuarantineLog:
    """The history row for ``row`` leaving the quarantine."""
    return QuarantineLog(
        message_id=row.id, account=row.account, direction=row.direction, action=action,
        actor=actor, at=at, limited=limited, mail_from=row.mail_from, rcpt_tos=list(row.rcpt_tos),
        subject=row.subject, size=row.size, reasons=list(row.reasons),
        quarantined_at=row.quarantined_at)
