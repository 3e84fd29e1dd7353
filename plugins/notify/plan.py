"""Deciding who is told what: events and digests become rows of the notification ledger.

Planning renders the message once and stores its bytes under a unique key, in the same
transaction as the bookkeeping it depends on (a held item recorded, a digest's items
marked), so planning the same event or digest twice never gives two notifications.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ie_core import App
from ie_core.events import Event
from ie_core.runtime import current
from ie_plugins.notify import compose, options
from ie_plugins.notify.models import PENDING, DigestState, HeldItem, Notification
from ie_plugins.notify.rendering import Templates

# The outbox events the notifier acts on, by the names their plugins publish
# (docs/notifications.md): the quarantine's and the send limits'.
HELD = "held"
RELEASED = "released"
DELETED = "deleted"
EVICTED = "evicted"
ACCOUNT_BLOCKED = "account_blocked"
LIMIT_EXCEEDED = "limit_exceeded"

log = logging.getLogger("ie.notify")

ADMIN_SCOPE = "admin"


def common_context(app: App) -> dict[str, Any]:
    return {"hostname": app.hostname, "now": compose.show_time(app.clock.now()),
            "admin_address": options.admin_address(app)}


def add_notification(s: Session, app: App, templates: Templates, *, key: str, kind: str,
                     recipient: str, account: str | None, context: dict[str, Any]) -> bool:
    """Render and store one notification unless ``key`` is already in the ledger."""
    if s.scalar(select(Notification.id).where(Notification.key == key)) is not None:
        return False
    if not compose.valid_address(recipient):
        log.warning("event=notification_skipped key=%s reason=bad_recipient", key)
        return False
    now = app.clock.now()
    msgid = compose.message_id(key, app.hostname)
    data = compose.build(templates, kind, {**common_context(app), **context},
                         sender=options.from_address(app), recipient=recipient,
                         msgid=msgid, when=now)
    s.add(Notification(key=key, kind=kind, account=account, recipient=recipient,
                       message_id=msgid, message=data, state=PENDING, attempts=0,
                       created_at=now, next_attempt_at=now))
    log.info("event=notification_planned key=%s kind=%s to=%s", key, kind, recipient)
    return True


def owner_address(app: App, account: str) -> str | None:
    """The owner's address (``ie_owner_address``: set with ``accounts edit --owner-email``
    or derived)."""
    return app.hooks.owner_address(app, account)


# -- events ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Switches:
    """The run-time settings, read before the planning transaction (SQLite has one writer:
    a settings read inside it would wait for it)."""

    admin_held: str
    admin_limit: bool
    admin_blocked: bool
    owner_actions: bool

    @classmethod
    def read(cls, app: App) -> Switches:
        return cls(admin_held=str(current(app, options.ADMIN_HELD)),
                   admin_limit=bool(current(app, options.ADMIN_LIMIT)),
                   admin_blocked=bool(current(app, options.ADMIN_BLOCKED)),
                   owner_actions=bool(current(app, options.OWNER_ACTIONS)))


def handle_event(app: App, templates: Templates, ev: Event) -> None:
    """Plan what ``ev`` calls for; safe to call again for the same event."""
    switches = Switches.read(app)
    for attempt in range(2):
        try:
            with app.db.session() as s:
                _handle(s, app, templates, ev, switches)
            return
        except IntegrityError:  # another planner inserted the same key first
            if attempt:
                raise


def _handle(s: Session, app: App, templates: Templates, ev: Event, sw: Switches) -> None:
    p = ev.payload
    account = compose.clean(p.get("account") or ev.account or "", 64)
    if ev.kind == HELD:
        _held(s, app, templates, ev, account, sw.admin_held)
    elif ev.kind in (RELEASED, DELETED, EVICTED):
        item = s.get(HeldItem, compose.clean(p.get("id"), 64))
        if item is not None:
            item.state = ev.kind
        actor = compose.clean(p.get("actor") or "", 64)
        if ev.kind != EVICTED and actor != account and sw.owner_actions:
            _owner_action(s, app, templates, ev, account, actor, item)
    elif ev.kind == LIMIT_EXCEEDED and sw.admin_limit:
        add_notification(s, app, templates, key=f"event:{ev.id}:admin", kind="limit_exceeded",
                         recipient=options.admin_address(app), account=account or None,
                         context={"limit": _limit_view(p, account),
                                  "date": compose.show_time(ev.created_at)})
    elif ev.kind == ACCOUNT_BLOCKED and sw.admin_blocked:
        add_notification(s, app, templates, key=f"event:{ev.id}:admin",
                         kind="account_blocked", recipient=options.admin_address(app),
                         account=account or None,
                         context={"account": account, "actor": compose.clean(p.get("actor")),
                                  "date": compose.show_time(ev.created_at)})


def _held(s: Session, app: App, templates: Templates, ev: Event, account: str,
          mode: str) -> None:
    p = ev.payload
    held_id = compose.clean(p.get("id"), 64)
    if not held_id or s.get(HeldItem, held_id) is not None:
        return
    size, score = p.get("size"), p.get("score")
    item = HeldItem(held_id=held_id, account=account, held_at=ev.created_at,
                    sender=compose.clean(p.get("sender"), 1024),
                    recipients=compose.clean_list(p.get("recipients")),
                    subject=compose.clean(p.get("subject"), 2048),
                    reasons=compose.clean_list(p.get("reasons")),
                    size=size if isinstance(size, int) else 0,
                    direction="incoming" if p.get("direction") == "incoming" else "outgoing",
                    score=float(score) if isinstance(score, int | float) else 0.0,
                    state="held",
                    admin_digest=None if mode == "summary" else 0)
    s.add(item)
    if mode == "each":
        add_notification(s, app, templates, key=f"event:{ev.id}:admin", kind="admin_held",
                         recipient=options.admin_address(app), account=account,
                         context={"message": _view(item)})


def _owner_action(s: Session, app: App, templates: Templates, ev: Event, account: str,
                  actor: str, item: HeldItem | None) -> None:
    to = owner_address(app, account)
    if not to:
        return
    held_id = compose.clean(ev.payload.get("id"), 64)
    view = _view(item) if item is not None else compose.held_view(
        held_id, account, None, "", [], "", [], 0)
    add_notification(s, app, templates, key=f"event:{ev.id}:owner", kind="owner_action",
                     recipient=to, account=account,
                     context={"action": ev.kind, "actor": actor, "message": view,
                              "date": compose.show_time(ev.created_at)})


def _view(item: HeldItem) -> dict[str, Any]:
    return compose.held_view(item.held_id, item.account, item.held_at, item.sender,
                             item.recipients, item.subject, item.reasons, item.size,
                             direction=item.direction, score=item.score)


def _limit_view(p: dict[str, Any], account: str) -> dict[str, Any]:
    """The ratelimit plugin's payload: object_id, so_type, name, account, limit, used."""
    return {"object_type": compose.clean(p.get("so_type") or p.get("type"), 32),
            "name": compose.clean(p.get("name"), 320),
            "id": compose.clean(p.get("object_id") or p.get("id"), 64),
            "limit": compose.clean(p.get("limit"), 32),
            "used": compose.clean(p.get("used", ""), 32), "account": account}


# -- digests --------------------------------------------------------------------------
@dataclass(frozen=True)
class DigestRequest:
    """What ``ie-cli notify send`` (or the daemon's timer) asks for."""

    force: bool = False        # ignore the period (every account with something new)
    all_time: bool = False     # list every message still held, not only new ones
    account: str | None = None  # only this account (sent whatever its period), no summary


@dataclass(frozen=True)
class PlannedDigest:
    scope: str
    recipient: str
    key: str
    count: int


def plan_digests(app: App, templates: Templates, req: DigestRequest) -> list[PlannedDigest]:
    """Plan every digest that is due (or forced); one transaction per digest."""
    planned = []
    for account in _accounts_with_held(app, req):
        digest = _retrying(lambda a=account: _owner_digest(app, templates, req, a))
        if digest:
            planned.append(digest)
    if req.account is None and current(app, options.ADMIN_HELD) == "summary":
        digest = _retrying(lambda: _admin_summary(app, templates, req))
        if digest:
            planned.append(digest)
    return planned


def _retrying(fn: Any) -> PlannedDigest | None:
    try:
        return fn()  # type: ignore[no-any-return]
    except IntegrityError:  # a concurrent planner created the scope row: plan again
        return fn()  # type: ignore[no-any-return]


def _accounts_with_held(app: App, req: DigestRequest) -> list[str]:
    with app.db.session() as s:
        q = select(HeldItem.account).where(HeldItem.state == "held").distinct()
        if req.account is not None:
            q = q.where(HeldItem.account == req.account)
        return sorted(s.scalars(q).all())


def _due(state: DigestState, period: str, now: datetime, forced: bool) -> bool:
    if forced:
        return True
    step = options.PERIODS.get(period)
    if step is None:
        return False
    return state.last_sent_at is None or now - state.last_sent_at >= step


def _lock_scope(s: Session, scope: str) -> DigestState:
    state = s.scalar(select(DigestState).where(DigestState.scope == scope).with_for_update())
    if state is None:
        state = DigestState(scope=scope, sequence=0, last_sent_at=None)
        s.add(state)
        s.flush()
    return state


def _owner_digest(app: App, templates: Templates, req: DigestRequest,
                  account: str) -> PlannedDigest | None:
    period = options.owner_period(app, account)
    explicit = req.account is not None
    if period == "never" and not explicit:
        return None
    now = app.clock.now()
    link = app.hooks.owner_login_link(app, account)  # before the transaction: it may write
    with app.db.session() as s:
        to = owner_address(app, account)
        if not to or not compose.valid_address(to):
            log.info("event=digest_skipped account=%s reason=no_valid_owner_email", account)
            return None
        state = _lock_scope(s, f"owner:{account}")
        if not _due(state, period, now, req.force or req.all_time or explicit):
            return None
        q = select(HeldItem).where(HeldItem.account == account, HeldItem.state == "held")
        if not req.all_time:
            q = q.where(HeldItem.owner_digest.is_(None))
        items = list(s.scalars(q.order_by(HeldItem.held_at, HeldItem.held_id)).all())
        if not items:
            return None
        state.sequence += 1
        state.last_sent_at = now
        for item in items:
            item.owner_digest = state.sequence
        key = f"digest:owner:{account}:{state.sequence}"
        add_notification(s, app, templates, key=key, kind="owner_digest", recipient=to,
                         account=account,
                         context={"account": account, "messages": [_view(i) for i in items],
                                  "all_time": req.all_time, "period": period,
                                  "login_link": link})
        return PlannedDigest(f"owner:{account}", to, key, len(items))


def _admin_summary(app: App, templates: Templates,
                   req: DigestRequest) -> PlannedDigest | None:
    now = app.clock.now()
    period = str(current(app, options.ADMIN_SUMMARY))
    with app.db.session() as s:
        state = _lock_scope(s, ADMIN_SCOPE)
        if not _due(state, period, now, req.force or req.all_time):
            return None
        q = select(HeldItem).where(HeldItem.state == "held")
        if not req.all_time:
            q = q.where(HeldItem.admin_digest.is_(None))
        items = list(s.scalars(q.order_by(HeldItem.account, HeldItem.held_at,
                                          HeldItem.held_id)).all())
        if not items:
            return None
        state.sequence += 1
        state.last_sent_at = now
        for item in items:
            item.admin_digest = state.sequence
        to = options.admin_address(app)
        key = f"digest:admin:{state.sequence}"
        add_notification(s, app, templates, key=key, kind="admin_summary", recipient=to,
                         account=None,
                         context={"messages": [_view(i) for i in items],
                                  "accounts": sorted({i.account for i in items}),
                                  "all_time": req.all_time, "period": period})
        return PlannedDigest(ADMIN_SCOPE, to, key, len(items))
