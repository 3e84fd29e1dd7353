"""The built-in classifier's tables (shared by every filter worker and node).

- ``bayes_tokens``: how many learned ham and spam messages contained each token; the
  token is kept as a 64-bit hash of its text (smaller index, fixed width).
- ``bayes_messages``: every learned message by digest, with its label and the token
  hashes counted for it, so learning twice does not count twice and ``--forget``
  subtracts exactly what was added.
- ``bayes_state``: one row with the message totals and a revision number that each
  training bumps (readers use it to know when their token cache is stale).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ie_core.db import Base, UTCDateTime

TOKEN_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: the rowid itself
STATE_ROW = 1


class BayesToken(Base):
    __tablename__ = "bayes_tokens"

    token: Mapped[int] = mapped_column(TOKEN_ID, primary_key=True, autoincrement=False)
    ham_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    spam_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class BayesMessage(Base):
    __tablename__ = "bayes_messages"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    spam: Mapped[bool] = mapped_column(Boolean, nullable=False)
    tokens: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    learned_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class BayesState(Base):
    __tablename__ = "bayes_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    nham: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    nspam: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
