"""The quarantine's scrape-time figures for /metrics: held bytes and messages of the
largest accounts (``filter.metrics_top_accounts`` of them, so the label set stays small)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select

from ie_core import App

from .models import HELD, RELEASING, HeldMessage


class HeldByAccount:
    """A Prometheus collector: asked at each scrape, it reads the database then."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        top = self.app.config.get("filter.metrics_top_accounts")
        size = func.sum(HeldMessage.size)
        with self.app.db.reading() as s:
            rows = s.execute(
                select(HeldMessage.account, size, func.count())
                .where(HeldMessage.state.in_((HELD, RELEASING)))
                .group_by(HeldMessage.account).order_by(size.desc(), HeldMessage.account)
                .limit(top)).all()
            total = s.execute(select(func.coalesce(size, 0), func.count())
                              .where(HeldMessage.state.in_((HELD, RELEASING)))).one()
        held_bytes = GaugeMetricFamily(
            "ie_quarantine_bytes", f"Bytes held, for the {top} largest accounts",
            labels=["account"])
        held_messages = GaugeMetricFamily(
            "ie_quarantine_messages", f"Messages held, for the {top} largest accounts",
            labels=["account"])
        for account, nbytes, count in rows:
            held_bytes.add_metric([account], int(nbytes or 0))
            held_messages.add_metric([account], int(count))
        yield held_bytes
        yield held_messages
        yield GaugeMetricFamily("ie_quarantine_bytes_all", "Bytes held in all",
                                value=int(total[0] or 0))
