"""``ie-cli top``: a live view for admins: messages and holds per second (from the
daemon's /metrics counters), the top senders of the last minutes, and the sender objects
nearest their hourly limit."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import click
from sqlalchemy import case, func, select

from ie_core import App
from ie_core.commands import get_app, require_root
from ie_core.db.models import MessageLog

from .counter import WINDOW, whitelisted_keys, window_usage
from .limits import effective_limit, server_settings
from .models import SenderObject, SendRecord
from .objects import ObjectKey


@dataclass(frozen=True)
class Rates:
    messages_per_s: float
    held_per_s: float


@dataclass(frozen=True)
class Sender:
    sender: str
    account: str
    messages: int
    held: int


@dataclass(frozen=True)
class NearLimit:
    so_type: str
    name: str
    used: int
    limit: int

    @property
    def share(self) -> float:
        return self.used / self.limit


def totals(url: str) -> tuple[float, float]:
    """(messages done, messages held) from the daemon's counters."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as resp:
        body = resp.read().decode()
    done = held = 0.0
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "ie_messages_total":
                done += sample.value
                held += sample.value if sample.labels.get("result") == "held" else 0.0
    return done, held


def rates(url: str, interval: float) -> Rates:
    before, t0 = totals(url), time.monotonic()
    time.sleep(interval)
    after, t1 = totals(url), time.monotonic()
    return Rates(round((after[0] - before[0]) / (t1 - t0), 2),
                 round((after[1] - before[1]) / (t1 - t0), 2))


def top_senders(app: App, minutes: int, rows: int) -> list[Sender]:
    since = app.clock.now() - timedelta(minutes=minutes)
    held = func.sum(case((MessageLog.outcome.like("held:%"), 1), else_=0))
    with app.db.reading() as s:
        found = s.execute(
            select(MessageLog.sender_email, MessageLog.account, func.count(), held)
            .where(MessageLog.direction == "outgoing", MessageLog.received_at >= since)
            .group_by(MessageLog.sender_email, MessageLog.account)
            .order_by(func.count().desc(), MessageLog.sender_email).limit(rows)).all()
    return [Sender(sender or "-", account, int(n), int(h or 0))
            for sender, account, n, h in found]


def nearest_limits(app: App, rows: int) -> list[NearLimit]:
    """The objects that sent in the window, by the share of their limit they used."""
    settings = server_settings(app)
    now = app.clock.now()
    with app.db.reading() as s:
        active = s.execute(select(SenderObject.id, SenderObject.so_type, SenderObject.name,
                                  SenderObject.limit_override).where(SenderObject.id.in_(
            select(SendRecord.object_id).where(SendRecord.at > now - WINDOW)))).all()
        usage = window_usage(s, [o.id for o in active], now)
    whitelisted = whitelisted_keys(app, [ObjectKey(o.so_type, o.name) for o in active])
    found = []
    for oid, so_type, name, override in active:
        limit = effective_limit(settings, so_type, override, (so_type, name) in whitelisted)
        if limit:
            used = usage[oid].used(settings.limit_mode) if oid in usage else 0
            found.append(NearLimit(so_type, name, used, limit))
    return sorted(found, key=lambda n: (-n.share, n.so_type, n.name))[:rows]


def snapshot(app: App, url: str | None, interval: float, minutes: int,
             rows: int) -> dict[str, Any]:
    measured: dict[str, Any] | None = None
    error = "filter.metrics_listen is off" if url is None else None
    if url is not None:
        try:
            measured = asdict(rates(url, interval))
        except OSError as err:
            error = f"{url}: {getattr(err, 'reason', err)}"
    return {"rates": measured, "metrics_error": error, "minutes": minutes,
            "top_senders": [asdict(x) for x in top_senders(app, minutes, rows)],
            "nearest_limits": [{**asdict(x), "share": round(x.share, 3)}
                               for x in nearest_limits(app, rows)]}


def render(view: dict[str, Any]) -> str:
    lines = []
    r = view["rates"]
    lines.append(f"messages/s {r['messages_per_s']:.2f}   held/s {r['held_per_s']:.2f}" if r
                 else f"rates unavailable ({view['metrics_error']})")
    lines += ["", f"top senders, last {view['minutes']} minutes",
              f"{'sender':40} {'account':16} {'messages':>8} {'held':>6}"]
    lines += [f"{x['sender'][:40]:40} {x['account'][:16]:16} {x['messages']:>8} {x['held']:>6}"
              for x in view["top_senders"]] or ["(none)"]
    lines += ["", "nearest their hourly limit",
              f"{'type':12} {'name':40} {'used':>6} {'limit':>6}"]
    lines += [f"{x['so_type']:12} {x['name'][:40]:40} {x['used']:>6} {x['limit']:>6}"
              for x in view["nearest_limits"]] or ["(none)"]
    return "\n".join(lines)


@click.command("top")
@click.option("--once", is_flag=True, help="print one view and exit")
@click.option("--json", "as_json", is_flag=True, help="print one view as JSON and exit")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.2, 60),
              help="seconds between refreshes (and between the two counter readings)")
@click.option("--minutes", default=5, show_default=True, type=click.IntRange(1, 60),
              help="how far back the top senders look")
@click.option("--rows", default=10, show_default=True, type=click.IntRange(1, 100))
def top(once: bool, as_json: bool, interval: float, minutes: int, rows: int) -> None:
    """Live view: messages/s, held/s, top senders, objects nearest their limit."""
    require_root()
    app = get_app()
    listen = app.config.get("filter.metrics_listen")
    url = f"http://{listen}/metrics" if listen else None
    while True:
        view = snapshot(app, url, interval if not (once or as_json) else min(interval, 1.0),
                        minutes, rows)
        if as_json:
            click.echo(json.dumps(view))
            return
        if once:
            click.echo(render(view))
            return
        click.clear()
        click.echo(render(view))
