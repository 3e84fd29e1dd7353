"""Core tables: the per-message log, accounts and the domain map, run-time settings, and
the events outbox with its consumer cursors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ie_core.db.base import Base, new_id


class MessageLog(Base):
    """One row per message the filter (or a release) handled."""

    __tablename__ = "message_log"
    __table_args__ = (
        Index("ix_message_log_account_received", "account", "received_at"),
        Index("ix_message_log_received_at", "received_at"),
        Index("ix_message_log_queue_id", "queue_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    queue_id: Mapped[str | None] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime]
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_tos: Mapped[list[str]]
    size: Mapped[int] = mapped_column(BigInteger)
    account: Mapped[str] = mapped_column(String(64))
    domain: Mapped[str | None] = mapped_column(String(255))
    sender_email: Mapped[str | None] = mapped_column(String(320))
    script: Mapped[str | None] = mapped_column(String(1024))
    action: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(64))
    reasons: Mapped[list[str]]
    score: Mapped[float] = mapped_column(Float, default=0.0)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    digest: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of the message as received (hex): with ``queue_id``, what tells an MTA's
    retry of a message already delivered or held from a new message."""


class Account(Base):
    """A hosting account.  Plugins keep their per-account settings in their own tables."""

    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime]


class DomainMap(Base):
    """ie's own domain -> account map (``ie-cli domains``), consulted first."""

    __tablename__ = "domain_map"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), ForeignKey("accounts.name",
                                                                ondelete="CASCADE"))


class Setting(Base):
    """Run-time settings an admin changes through ``ie-cli`` (JSON values)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class Event(Base):
    """The outbox: written in the same transaction as the change it describes."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64))
    account: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]


class EventCursor(Base):
    """How far each named consumer has read the outbox."""

    __tablename__ = "event_cursors"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)


class ChangeCounter(Base):
    """One counter per kind of read-mostly data (whitelists, the domain map, run-time
    settings): every write of that data adds one in its own transaction, so a process
    that cached the data knows, with one read, whether its copy is still current
    (:mod:`ie_core.changes`)."""

    __tablename__ = "change_counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
