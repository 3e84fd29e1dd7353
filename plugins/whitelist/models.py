"""The whitelist table: one row per (list, email or domain)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ie_core.db import Base

KINDS = ("authuser", "sender", "recipient")


class WhitelistEntry(Base):
    """``value`` is a lower-case email address, or a domain (no ``@``) that also covers
    its subdomains."""

    __tablename__ = "whitelist_entries"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]
