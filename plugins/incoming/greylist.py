"""Greylisting: the first message of a (client network, sender, recipient) triplet gets
``451``; a retry after ``incoming.greylist_delay`` seconds passes, and so does every later
message of that triplet while it keeps coming.

The state is one row per triplet in ``incoming_greylist``, shared by every node that
uses the database.  The client network is the /24 (IPv4) or /64 (IPv6) of the address
our MTA wrote in its own Received line (:func:`ie_core.identity.client_address`), so a
sender cannot choose it with a header, and a sender's pool of outgoing servers in one
network counts as one client.  Rows expire: a first sight not retried within
``incoming.greylist_retry_window`` seconds, and a passed triplet not seen for
``incoming.greylist_pass_ttl`` seconds, are forgotten (and pruned hourly).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import String, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from ie_core import App, MessageContext
from ie_core.background import BackgroundService, periodic
from ie_core.db import Base
from ie_core.identity import client_address, normalise_address

UNKNOWN_NETWORK = "unknown"
PRUNE_EVERY = 3600.0


class GreylistEntry(Base):
    """One triplet: ``key`` is the SHA-256 of network, sender and recipient; the three
    are kept beside it (truncated) for whoever reads the table."""

    __tablename__ = "incoming_greylist"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    network: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime] = mapped_column(index=True)
    passed_at: Mapped[datetime | None]


def client_network(ctx: MessageContext) -> str:
    """The /24 or /64 the client's address is in, or ``unknown`` when our MTA did not
    write one (a local submission, an MTA whose Received line ie does not read)."""
    address = client_address(ctx)
    if address is None:
        return UNKNOWN_NETWORK
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def triplet_key(network: str, sender: str, recipient: str) -> str:
    return hashlib.sha256("\0".join((network, sender, recipient)).encode()).hexdigest()


def envelope_sender(mail_from: str) -> str:
    """The envelope sender as the triplet holds it: lower case, ``""`` for ``<>``."""
    return normalise_address(mail_from) or mail_from.strip().strip("<>").strip().lower()


class Greylist:
    """The two lifetimes, in seconds (the delay is a run-time setting, given per call)."""

    def __init__(self, retry_window: int, pass_ttl: int) -> None:
        self.retry_window = timedelta(seconds=retry_window)
        self.pass_ttl = timedelta(seconds=pass_ttl)

    def expired(self, row: GreylistEntry, now: datetime) -> bool:
        if row.passed_at is None:
            return now - row.first_seen > self.retry_window
        return now - row.last_seen > self.pass_ttl

    @classmethod
    def from_app(cls, app: App) -> Greylist:
        return cls(app.config.get("incoming.greylist_retry_window"),
                   app.config.get("incoming.greylist_pass_ttl"))

    def wait(self, app: App, network: str, sender: str, recipients: Sequence[str],
             delay: int, now: datetime, dry_run: bool = False) -> int:
        """Seconds until every recipient's triplet passes; 0 when they all pass now.

        A triplet seen for the first time (or expired) starts its delay now; one whose
        delay is over is marked passed.  ``dry_run`` reads and writes nothing.
        """
        keys = {triplet_key(network, sender, r): r for r in dict.fromkeys(recipients)}
        if dry_run:
            with app.db.reading() as s:
                rows = self._rows(s, keys)
                return max((self._remaining(rows.get(k), now, delay) for k in keys),
                           default=0)
        with app.db.session() as s:
            rows = self._rows(s, keys)
            waits = []
            for key, recipient in keys.items():
                row = rows.get(key)
                remaining = self._remaining(row, now, delay)
                if row is None:
                    self._insert(s, key, network, sender, recipient, now)
                elif self.expired(row, now):
                    row.first_seen, row.passed_at = now, None
                elif remaining == 0 and row.passed_at is None:
                    row.passed_at = now
                if row is not None:
                    row.last_seen = now
                waits.append(remaining)
            return max(waits, default=0)

    def _remaining(self, row: GreylistEntry | None, now: datetime, delay: int) -> int:
        """Seconds this triplet still waits (at least 1 for a first sight: the first
        message is always refused, whatever the delay)."""
        if row is None or self.expired(row, now):
            return max(delay, 1)
        if row.passed_at is not None:
            return 0
        left = (row.first_seen + timedelta(seconds=delay) - now).total_seconds()
        return max(math.ceil(left), 0)

    @staticmethod
    def _rows(s: Session, keys: dict[str, str]) -> dict[str, GreylistEntry]:
        found = s.scalars(select(GreylistEntry).where(GreylistEntry.key.in_(list(keys))))
        return {row.key: row for row in found}

    @staticmethod
    def _insert(s: Session, key: str, network: str, sender: str, recipient: str,
                now: datetime) -> None:
        """Insert the triplet; another node that inserted it first keeps its row."""
        insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" \
            else sqlite.insert
        s.execute(insert(GreylistEntry).values(
            key=key, network=network, sender=sender[:320], recipient=recipient[:320],
            first_seen=now, last_seen=now, passed_at=None).on_conflict_do_nothing())

    def prune(self, app: App) -> int:
        """Delete the expired rows; how many went."""
        now = app.clock.now()
        with app.db.session() as s:
            result = s.execute(delete(GreylistEntry).where(or_(
                (GreylistEntry.passed_at.is_(None))
                & (GreylistEntry.first_seen < now - self.retry_window),
                (GreylistEntry.passed_at.is_not(None))
                & (GreylistEntry.last_seen < now - self.pass_ttl))))
            return int(getattr(result, "rowcount", 0) or 0)


def pruner(app: App, greylist: Greylist) -> BackgroundService:
    return periodic("incoming-greylist-prune", PRUNE_EVERY, lambda: greylist.prune(app))
