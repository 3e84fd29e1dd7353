"""``am stats``: the account -> domain -> sender email tree (and scripts per account)
with what each object sent and had held, its effective limit and state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import case, exists, func, or_, select
from sqlalchemy.orm import aliased

from ie_core import App

from .counter import WINDOW
from .limits import ServerSettings, effective_limit, is_whitelisted, server_settings
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


@dataclass(frozen=True)
class Filters:
    account_name: str | None = None
    domain: str | None = None
    sender_email: str | None = None
    script_name: str | None = None


def stats(app: App, since: timedelta, filters: Filters, limit: int = 25,
          offset: int = 0) -> dict[str, Any]:
    now = app.clock.now()
    settings = server_settings(app)
    with app.db.session() as s:
        objects = list(s.scalars(select(SenderObject)))
        counts: dict[tuple[str, str], int] = {
            (oid, outcome): int(n) for oid, outcome, n in s.execute(_counts(now - since))}
    children: dict[str | None, list[SenderObject]] = {}
    for obj in sorted(objects, key=lambda o: o.name):
        children.setdefault(obj.parent_id, []).append(obj)
    tree = _Tree(app, settings, counts, children, now - WINDOW)
    accounts = []
    for account in (o for o in sorted(objects, key=lambda o: o.name) if o.so_type == ACCOUNT):
        node = tree.account(account, filters)
        if node is not None:
            accounts.append(node)
    page = accounts[offset:offset + limit]
    return {"accounts": [tree.render(n) for n in page]}


def _counts(since: Any) -> Any:
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
            .where(SendRecord.at > since, or_(obj.so_type == ACCOUNT, same_account))
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
    def __init__(self, app: App, settings: ServerSettings, counts: dict[tuple[str, str], int],
                 children: dict[str | None, list[SenderObject]], limited_after: Any) -> None:
        self.app = app
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
        whitelisted = is_whitelisted(self.app, obj.so_type, obj.name)
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
