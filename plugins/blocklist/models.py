"""The blocklist table: one row per (list, scope, email or domain)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ie_core.db import Base

SENDER = "sender"
RECIPIENT = "recipient"
KINDS = (SENDER, RECIPIENT)
SERVER = ""
"""The ``account`` of an entry that holds for the whole server."""
REFUSE = "refuse"
JUNK = "junk"
DEFAULT = ""
"""The ``action`` of an entry that follows ``blocklist.sender_action``."""


class BlocklistEntry(Base):
    """``value`` is a lower-case email address, or a domain (no ``@``) that also covers
    its subdomains; ``account`` is the recipient's (``sender``) or the sending
    (``recipient``) account it holds for, ``""`` for every account; ``action`` is
    ``refuse``, ``junk`` or ``""`` (the server's default)."""

    __tablename__ = "blocklist_entries"
    __table_args__ = (UniqueConstraint("kind", "account", "value"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
