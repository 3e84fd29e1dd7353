"""The sender objects of a message and their rows (created on first use, ids stable)."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ie_core import App, SenderIdentity
from ie_core.db import Database, new_id

from .models import ACCOUNT, DOMAIN, SCRIPT, SENDER_EMAIL, SenderObject

MAX_NAME = 1024
MAX_KNOWN = 200_000
"""Sender-object ids a process remembers per database before it starts over."""
_known: weakref.WeakKeyDictionary[Database, dict[tuple[str, str], str]] = \
    weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ObjectKey:
    so_type: str
    name: str
    parent: ObjectKey | None = None


def object_keys(identity: SenderIdentity) -> list[ObjectKey]:
    """account, domain, sender email and script (the last three when known).

    Names are lower-case (scripts keep their path's case); a script is named by its
    site and path (``example.com/wp/mailer.php``) so the client address cPanel appends
    does not split one script into many.
    """
    account = ObjectKey(ACCOUNT, (identity.account or "root").lower())
    keys = [account]
    domain = None
    if identity.domain:
        domain = ObjectKey(DOMAIN, identity.domain.lower(), account)
        keys.append(domain)
    if identity.sender_email and domain is not None:
        keys.append(ObjectKey(SENDER_EMAIL, identity.sender_email.lower(), domain))
    if identity.script:
        name = ((identity.script_domain or "") + (identity.script_path or "")
                or identity.script)
        keys.append(ObjectKey(SCRIPT, name[:MAX_NAME], account))
    return keys


def ensure(app: App, keys: list[ObjectKey]) -> dict[ObjectKey, str]:
    """The id of every key's row, creating the missing ones (concurrent creators agree:
    the unique (type, name) constraint keeps one row, and everybody reads it back).

    Ids never change and rows are never deleted, so once read they are kept in the
    process (per database); a known key costs no query.  Whoever locks the rows places
    each under its parent (:func:`place`: a domain moved to another account follows
    it); a row that is gone after all (deleted by hand) is :class:`StaleIds`."""
    known = _known.setdefault(app.db, {})
    cached = {k: known.get((k.so_type, k.name)) for k in keys}
    if all(cached.values()):
        return cast(dict[ObjectKey, str], cached)
    found = _read(app, keys)
    missing = [k for k in keys if k not in found]
    if missing:
        now = app.clock.now()
        with app.db.session() as s:
            dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
            for key in sorted(missing, key=lambda k: (k.so_type, k.name)):
                s.execute(dialect.insert(SenderObject.__table__).values(
                    id=new_id(), so_type=key.so_type, name=key.name, created_at=now)
                    .on_conflict_do_nothing())
        found = _read(app, keys)
    if len(known) >= MAX_KNOWN:
        known.clear()
    ids = {}
    for key, (object_id, _) in found.items():
        ids[key] = known[(key.so_type, key.name)] = object_id
    return ids


class StaleIds(Exception):
    """A remembered sender object's row no longer exists."""


def forget_ids(app: App) -> None:
    """Drop the remembered ids (after :class:`StaleIds`)."""
    _known.pop(app.db, None)


def place(rows: Mapping[str, Window], ids: Mapping[ObjectKey, str]) -> list[Window]:
    """Check that every locked row of ``ids`` exists and sits under its parent's row,
    moving it there when not (a domain that moved to another account); the rows moved
    (to :func:`save`)."""
    moved = []
    for key, object_id in ids.items():
        row = rows.get(object_id)
        if row is None:
            raise StaleIds(f"sender object {key.so_type} {key.name} ({object_id}) is gone")
        parent_id = ids.get(key.parent) if key.parent is not None else None
        if parent_id is not None and row.parent_id != parent_id:
            row.parent_id = parent_id
            moved.append(row)
    return moved


def read_ids(app: App, keys: list[ObjectKey]) -> dict[ObjectKey, str]:
    """The ids of the keys that have a row (nothing is created)."""
    return {k: object_id for k, (object_id, _) in _read(app, keys).items()}


def _read(app: App, keys: list[ObjectKey]) -> dict[ObjectKey, tuple[str, str | None]]:
    wanted = {(k.so_type, k.name): k for k in keys}
    with app.db.reading() as s:
        rows = s.execute(select(SenderObject.so_type, SenderObject.name, SenderObject.id,
                                SenderObject.parent_id)
                         .where(tuple_(SenderObject.so_type, SenderObject.name)
                                .in_(list(wanted)))).all()
    return {wanted[(t, n)]: (i, p) for t, n, i, p in rows}


@dataclass
class Window:
    """A sender object's row as the send-limit check reads and changes it: locked by
    :func:`lock`, its changes written by :func:`save` before the transaction commits."""

    id: str
    so_type: str
    name: str
    parent_id: str | None
    limit_override: int | None
    limited_at: datetime | None
    window_messages: int
    window_recipients: int
    window_at: datetime | None
    window_oldest: datetime | None


_ROWS = "ie_ratelimit_rows"
"""Where a transaction keeps the rows it has locked (``Session.info``)."""
_OBJECTS = cast(Table, SenderObject.__table__)
_LOCK = (select(*(_OBJECTS.c[f.name] for f in fields(Window)))
         .where(_OBJECTS.c.id.in_(bindparam("ids", expanding=True)))
         .order_by(_OBJECTS.c.id).with_for_update())
_SAVE = (update(_OBJECTS).where(_OBJECTS.c.id == bindparam("row_id"))
         .values(parent_id=bindparam("row_parent_id"),
                 limited_at=bindparam("row_limited_at"),
                 window_messages=bindparam("row_messages"),
                 window_recipients=bindparam("row_recipients"),
                 window_at=bindparam("row_at"),
                 window_oldest=bindparam("row_oldest")))


def lock(s: Session, ids: Iterable[str]) -> dict[str, Window]:
    """The rows, locked until the transaction ends, always in id order so that two
    transactions never wait on each other in a cycle (``FOR UPDATE`` on PostgreSQL;
    SQLite transactions here already hold the database's write lock).

    Rows this transaction locked before are not read again: the transaction's own
    copies (changed by its earlier checks and saved) are the current ones."""
    held: dict[str, Window] = s.info.setdefault(_ROWS, {})
    wanted = sorted(set(ids))
    missing = [i for i in wanted if i not in held]
    if missing:
        for row in s.connection().execute(_LOCK, {"ids": missing}):
            held[row.id] = Window(*row)
    return {i: held[i] for i in wanted if i in held}


def save(s: Session, rows: Iterable[Window]) -> None:
    """Write locked rows' parents, counters and limit marks."""
    params = [{"row_id": r.id, "row_parent_id": r.parent_id,
               "row_limited_at": r.limited_at, "row_messages": r.window_messages,
               "row_recipients": r.window_recipients, "row_at": r.window_at,
               "row_oldest": r.window_oldest} for r in rows]
    if params:
        s.connection().execute(_SAVE, params)
