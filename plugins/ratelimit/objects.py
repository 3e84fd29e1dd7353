"""The sender objects of a message and their rows (created on first use, ids stable)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ie_core import App, SenderIdentity
from ie_core.db import new_id

from .models import ACCOUNT, DOMAIN, SCRIPT, SENDER_EMAIL, SenderObject

MAX_NAME = 1024


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
    the unique (type, name) constraint keeps one row, and everybody reads it back), and
    placing each under its parent (a domain moved to another account follows it)."""
    known = _read(app, keys)
    missing = [k for k in keys if k not in known]
    if missing:
        now = app.clock.now()
        with app.db.session() as s:
            dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
            for key in sorted(missing, key=lambda k: (k.so_type, k.name)):
                s.execute(dialect.insert(SenderObject.__table__).values(
                    id=new_id(), so_type=key.so_type, name=key.name, created_at=now)
                    .on_conflict_do_nothing())
        known = _read(app, keys)
    ids = {k: object_id for k, (object_id, _) in known.items()}
    stale = sorted((ids[k], ids[k.parent]) for k in keys
                   if k.parent in ids and known[k][1] != ids[k.parent])
    if stale:  # in id order, like lock(), so no two transactions wait in a cycle
        with app.db.session() as s:
            for object_id, parent_id in stale:
                s.execute(update(SenderObject).where(SenderObject.id == object_id)
                          .values(parent_id=parent_id))
    return ids


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


def lock(s: Session, ids: list[str]) -> dict[str, SenderObject]:
    """The rows, locked until the transaction ends, always in id order so that two
    transactions never wait on each other in a cycle (``FOR UPDATE`` on PostgreSQL;
    SQLite transactions here already hold the database's write lock)."""
    rows = s.scalars(select(SenderObject).where(SenderObject.id.in_(sorted(set(ids))))
                     .order_by(SenderObject.id).with_for_update()
                     .execution_options(populate_existing=True)).all()
    return {r.id: r for r in rows}
