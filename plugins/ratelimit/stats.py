"""``am stats``: the account -> domain -> sender email tree (and scripts per account)
with what each object sent and had held, its effective limit and state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from ie_core import App

from .counter import WINDOW
from .limits import WHITELISTABLE, ServerSettings, effective_limit, server_settings
from .models import (
    ACCOUNT,
    DOMAIN,
    QUARANTINED,
    SCRIPT,
    SENDER_EMAIL,
    SENT,
    SenderObject,
    SendRecord,
)

CHUNK = 500  # ids per IN list


@dataclass(frozen=True)
class Filters:
    account_name: str | None = None
    domain: str | None = None
    sender_email: str | None = None
    script_name: str | None = None


def stats(app: App, since: timedelta, filters: Filters, limit: int = 25,
          offset: int = 0) -> dict[str, Any]:
    """One page of accounts (by name) with their subtrees and figures.  Only the page's
    objects are loaded and counted: the cost follows the page, not the server."""
    now = app.clock.now()
    settings = server_settings(app)
    narrowed = any(vars(filters).values())
    with app.db.session() as s:
        accounts = list(s.execute(_accounts(filters)).all())
        if not narrowed:  # every account shows: page before loading anything else
            accounts = accounts[offset:offset + limit]
        objects = _subtrees(s, [a.id for a in accounts])
        counts: dict[tuple[str, str], int] = {}
        ids = [o.id for o in objects]
        for start in range(0, len(ids), CHUNK):
            counts.update({(oid, outcome): int(n) for oid, outcome, n in s.execute(
                _counts(now - since, ids[start:start + CHUNK]))})
    children: dict[str | None, list[SenderObject]] = {}
    for obj in sorted(objects, key=lambda o: o.name):
        children.setdefault(obj.parent_id, []).append(obj)
    whitelisted = app.hooks.whitelisted_among(
        app, "sender", [o.name for o in objects if o.so_type in WHITELISTABLE])
    tree = _Tree(settings, counts, children, now - WINDOW, whitelisted)
    nodes = []
    for account in sorted((o for o in objects if o.so_type == ACCOUNT), key=lambda o: o.name):
        node = tree.account(account, filters)
        if node is not None:
            nodes.append(node)
    if narrowed:
        nodes = nodes[offset:offset + limit]
    return {"accounts": [tree.render(n) for n in nodes]}


def _accounts(f: Filters) -> Any:
    """The accounts (id, name) that may match ``f``, by name; the tree narrows them."""
    account, domain, sender, script = (aliased(SenderObject) for _ in range(4))
    query = select(account.id, account.name).where(account.so_type == ACCOUNT)
    if f.account_name is not None:
        query = query.where(func.lower(account.name) == f.account_name.strip().lower())
    if f.domain is not None or f.sender_email is not None:
        query = query.join(domain, (domain.parent_id == account.id)
                           & (domain.so_type == DOMAIN))
        if f.domain is not None:
            query = query.where(func.lower(domain.name) == f.domain.strip().lower())
        if f.sender_email is not None:
            query = query.join(sender, (sender.parent_id == domain.id)
                               & (sender.so_type == SENDER_EMAIL)).where(
                func.lower(sender.name) == f.sender_email.strip().lower())
    if f.script_name is not None:
        query = query.join(script, (script.parent_id == account.id)
                           & (script.so_type == SCRIPT)).where(
            func.lower(script.name) == f.script_name.strip().lower())
    return query.distinct().order_by(account.name)


def _subtrees(s: Session, account_ids: list[str]) -> list[SenderObject]:
    """The accounts, their domains and scripts, and the domains' sender addresses."""
    found: list[SenderObject] = []
    level = _load(s, SenderObject.id, account_ids)
    while level:  # account -> domains and scripts -> sender addresses
        found.extend(level)
        level = _load(s, SenderObject.parent_id, [o.id for o in level])
    return found


def _load(s: Session, column: Any, ids: list[str]) -> list[SenderObject]:
    rows: list[SenderObject] = []
    for start in range(0, len(ids), CHUNK):
        rows.extend(s.scalars(select(SenderObject).where(column.in_(ids[start:start + CHUNK]))))
    return rows


def _counts(since: Any, ids: list[str]) -> Any:
    """Records per (object, outcome) since ``since``.  A domain, sender email or script
    counts only the messages its current account also counted: a domain first seen
    under ``root`` (before the domain map named its account) and moved since never shows
    more than its account."""
    obj, parent, account_record = aliased(SenderObject), aliased(SenderObject), \
        aliased(SendRecord)
    owner = case((obj.so_type == SENDER_EMAIL, parent.parent_id), else_=obj.parent_id)
    same_account = exists().where(account_record.message_id == SendRecord.message_id,
                                  account_record.object_id == owner)
    return (select(SendRecord.object_id, SendRecord.outcome, func.count())
            .join(obj, obj.id == SendRecord.object_id)
            .outerjoin(parent, parent.id == obj.parent_id)
            .where(SendRecord.at > since, SendRecord.object_id.in_(ids),
                   or_(obj.so_type == ACCOUNT, same_account))
            .group_by(SendRecord.object_id, SendRecord.outcome))


def _matches(wanted: str | None, name: str) -> bool:
    return wanted is None or wanted.strip().lower() == name.lower()


@dataclass
class _Node:
    obj: SenderObject
    domains: list[_Node] | None = None
    senders: list[_Node] | None = None
    scripts: list[_Node] | None = None


class _Tree:
    def __init__(self, settings: ServerSettings, counts: dict[tuple[str, str], int],
                 children: dict[str | None, list[SenderObject]], limited_after: Any,
                 whitelisted: set[str]) -> None:
        self.whitelisted = whitelisted
        self.settings = settings
        self.counts = counts
        self.children = children
        self.limited_after = limited_after

    def _kids(self, parent: SenderObject, so_type: str) -> list[SenderObject]:
        return [o for o in self.children.get(parent.id, []) if o.so_type == so_type]

    def account(self, account: SenderObject, f: Filters) -> _Node | None:
        """The account's subtree narrowed by the filters; ``None`` if nothing matches."""
        if not _matches(f.account_name, account.name):
            return None
        domains = []
        for domain in self._kids(account, DOMAIN):
            if not _matches(f.domain, domain.name):
                continue
            senders = [_Node(o) for o in self._kids(domain, SENDER_EMAIL)
                       if _matches(f.sender_email, o.name)]
            if f.sender_email is None or senders:
                domains.append(_Node(domain, senders=senders))
        scripts = [_Node(o) for o in self._kids(account, SCRIPT)
                   if _matches(f.script_name, o.name)]
        if (f.domain or f.sender_email) and not domains:
            return None
        if f.script_name and not scripts:
            return None
        return _Node(account, domains=domains, scripts=scripts)

    def _fields(self, obj: SenderObject) -> dict[str, Any]:
        whitelisted = obj.so_type in WHITELISTABLE and obj.name in self.whitelisted
        limit = effective_limit(self.settings, obj.so_type, obj.limit_override, whitelisted)
        return {
            "id": obj.id, "name": obj.name,
            "messages": self.counts.get((obj.id, SENT), 0),
            "quarantined": self.counts.get((obj.id, QUARANTINED), 0),
            "limit": limit,
            # the mark follows the limit in force now: none once the limit is lifted
            "rateLimited": bool(limit) and obj.limited_at is not None
            and obj.limited_at > self.limited_after,
            "whitelisted": whitelisted,
            "exclusion": obj.limit_override is not None,
        }

    def render(self, node: _Node) -> dict[str, Any]:
        out = self._fields(node.obj)
        if node.obj.so_type == ACCOUNT:
            out["domains"] = [self.render(d) for d in node.domains or []]
            out["scripts"] = [self.render(sc) for sc in node.scripts or []]
        elif node.obj.so_type == DOMAIN:
            out["account_id"] = node.obj.parent_id
            out["sender_emails"] = [{**self.render(e), "account_id": node.obj.parent_id}
                                    for e in node.senders or []]
        elif node.obj.so_type == SENDER_EMAIL:
            out["domain_id"] = node.obj.parent_id
        else:
            out["account_id"] = node.obj.parent_id
        return out
