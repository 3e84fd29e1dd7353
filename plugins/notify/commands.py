"""``ie-cli notify``: send digests now, send samples of every template, per-account
digest schedule, and the ledger."""

from __future__ import annotations

from datetime import timedelta

import click
from sqlalchemy import select

from ie_core import App, NotFound
from ie_core.commands import emit, emit_ok, fail, get_app, require_root, served
from ie_core.db.models import Account
from ie_core.smtp.reinject import Reply
from ie_plugins.notify import compose, options
from ie_plugins.notify.models import Notification
from ie_plugins.notify.plan import DigestRequest, common_context
from ie_plugins.notify.rendering import KINDS
from ie_plugins.notify.service import Notifier


@click.group("notify", help="Notifications: digests, template samples, schedules.")
def notify() -> None:
    pass


@notify.command("send")
@click.option("--force-all", is_flag=True,
              help="send every account's digest now, whatever its period")
@click.option("--force-all-time", is_flag=True,
              help="list every message still held, not only those new since the last digest")
@click.option("--account", help="only this account's digest (sent whatever its period)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def send(force_all: bool, force_all_time: bool, account: str | None, as_json: bool) -> None:
    """Send the digests that are due (or forced) now."""
    require_root()
    app = get_app()
    if account is not None:
        with app.db.session() as s:
            if s.get(Account, account) is None:
                raise NotFound(f"account {account[:64]!r} does not exist")
    notifier = Notifier(app)
    try:
        notifier.delivery.recover()
        notifier.catch_up()
        planned = notifier.digests(DigestRequest(force=force_all, all_time=force_all_time,
                                                 account=account))
        # everything due goes, not only the digests: the notices the events planned
        # (limit exceeded, account blocked) too, as ie-notifyd would send them
        report = notifier.delivery.deliver_due()
    finally:
        notifier.delivery.close()
    state = {k: "sent" for k in report.sent}
    state.update({k: "deferred" for k in report.deferred})
    state.update({k: "failed" for k in report.failed})
    items: list[dict[str, object]] = [
        {"scope": d.scope, "recipient": d.recipient, "messages": d.count,
         "status": state.get(d.key, "queued")} for d in planned]
    digest_keys = {d.key for d in planned}
    with app.db.session() as s:
        notices = s.execute(select(Notification.key, Notification.kind, Notification.recipient)
                            .where(Notification.key.in_(set(state) - digest_keys))
                            .order_by(Notification.id)).all()
    items += [{"scope": f"notice:{kind}", "recipient": recipient, "messages": None,
               "status": state[key]} for key, kind, recipient in notices]
    emit({"items": items}, as_json, lambda: "\n".join(
        f"{i['scope']} {i['recipient']} "
        + (f"messages={i['messages']} " if i["messages"] is not None else "") + str(i["status"])
        for i in items) or "nothing due")
    if report.deferred or report.failed:
        raise click.exceptions.Exit(1)


@notify.command("test")
@click.option("--to", "to", required=True, help="address that receives the samples")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def test(to: str, as_json: bool) -> None:
    """Send a sample of every template to ADDRESS (nothing is recorded)."""
    require_root()
    if not compose.valid_address(to):
        fail(f"not a valid address: {to[:80]!r}")
    app = get_app()
    notifier = Notifier(app)
    results = []
    try:
        for kind in KINDS:
            now = app.clock.now()
            data = compose.build(notifier.templates, kind, _sample(app, kind),
                                 sender=options.from_address(app), recipient=to,
                                 msgid=compose.message_id(f"test:{kind}:{now.isoformat()}",
                                                          app.hostname), when=now)
            reply: Reply = notifier.delivery.reinjector.send(options.from_address(app), [to],
                                                             data).reply
            results.append({"template": kind, "ok": reply.ok, "reply": str(reply)})
    finally:
        notifier.delivery.close()
    emit({"items": results}, as_json, lambda: "\n".join(
        f"{r['template']} {'sent' if r['ok'] else 'FAILED'} {r['reply']}" for r in results))
    if not all(r["ok"] for r in results):
        raise click.exceptions.Exit(1)


@notify.command("schedule")
@click.option("--account", required=True, help="hosting account")
@click.option("--period", required=True, type=click.Choice([*options.PERIODS, "default"]),
              help="how often the owner gets a digest of held mail; default: the server's")
def schedule(account: str, period: str) -> None:
    """Set one account owner's digest period."""
    require_root()
    app = get_app()
    with app.db.session() as s:
        if s.get(Account, account) is None:
            raise NotFound(f"account {account[:64]!r} does not exist")
    app.settings.set(options.owner_schedule_key(account), None if period == "default" else period)
    emit_ok()


@served
@notify.command("list")
@click.option("--state", type=click.Choice(["pending", "sending", "handed_over", "sent",
                                            "failed"]), help="only rows in this state")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10000))
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_(state: str | None, limit: int, as_json: bool) -> None:
    """The most recent notifications and what became of them."""
    require_root()
    app = get_app()
    with app.db.session() as s:
        q = select(Notification).order_by(Notification.id.desc()).limit(limit)
        if state:
            q = q.where(Notification.state == state)
        rows = s.scalars(q).all()
        items = [{"key": r.key, "kind": r.kind, "account": r.account,
                  "recipient": r.recipient, "message_id": r.message_id, "state": r.state,
                  "attempts": r.attempts, "created_at": r.created_at.isoformat(),
                  "sent_at": r.sent_at.isoformat() if r.sent_at else None,
                  "last_reply": r.last_reply} for r in rows]
    emit({"items": items}, as_json, lambda: "\n".join(
        f"{i['created_at']} {i['state']} {i['kind']} {i['recipient']} {i['key']}"
        for i in items))


def _sample(app: App, kind: str) -> dict[str, object]:
    """Plausible data for ``kind`` (``notify test``), a hostile-looking subject included."""
    now = app.clock.now()
    msg = compose.held_view("0f1e2d3c-sample", "example", now - timedelta(minutes=5),
                            '"Sample Sender" <sender@example.com>', ["rcpt@example.org"],
                            "<b>Sample</b> subject", ["spam"], 2048)
    common = {**common_context(app), "date": msg["date"]}
    if kind in ("owner_digest", "admin_summary"):
        return {**common, "account": "example", "messages": [msg], "accounts": ["example"],
                "all_time": False, "period": "daily",
                "login_link": "https://mail.example.com/login/link?token=SAMPLE"}
    if kind == "limit_exceeded":
        return {**common, "limit": {"object_type": "account", "name": "example", "id": "1",
                                    "limit": "100", "used": "101", "account": "example"}}
    if kind == "account_blocked":
        return {**common, "account": "example", "actor": "root"}
    if kind == "owner_action":
        return {**common, "action": "released", "actor": "root", "message": msg}
    return {**common, "message": msg}
