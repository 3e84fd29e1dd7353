"""ie-web's tables: login credentials, failed login attempts, the signing secret."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ie_core.db import Base

ADMIN = "root"
"""The admin's login name: root, who sees and does everything, as in ``ie-cli``."""


class WebCredential(Base):
    """A password that opens ie-web: the admin's (``name`` = ``root``) or an account
    owner's (``name`` = the account).  Only the Argon2 hash is kept."""

    __tablename__ = "web_credentials"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime]


class WebLoginFailure(Base):
    """One failed login, counted per client address and per login name over a window;
    kept in the database so that every ie-web process sees the same count."""

    __tablename__ = "web_login_failures"
    __table_args__ = (Index("ix_web_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]


class WebSecret(Base):
    """Random keys made once and shared by every ie-web process (and by the notifier,
    which signs the owners' login links)."""

    __tablename__ = "web_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
