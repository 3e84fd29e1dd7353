"""Statistics (admin: every account or one; owner: their own): outgoing mail sent, held
and refused per day, incoming spam and legitimate mail per day and per account, each as
an SVG chart with its numbers beside it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ie_plugins.incoming.stats import daily as incoming_daily

from .charts import Series, bar_chart, by_day
from .pages import Audience, NavItem, Page, Viewer, any_page, ie_app, render
from .stats_data import OUTGOING_KINDS, days, outgoing_daily

PERIODS = {"7": "last 7 days", "30": "last 30 days", "90": "last 90 days"}


@any_page
def statistics(request: Request, viewer: Viewer) -> Response:
    app = ie_app(request)
    period = request.query_params.get("days", "30")
    if period not in PERIODS:
        period = "30"
    account = viewer.account
    if account is None:  # the admin may narrow to one account
        account = request.query_params.get("account", "").strip()[:64] or None
    span = days(app, int(period))
    outgoing = outgoing_daily(app, int(period), account)
    incoming = incoming_daily(app, int(period), account)
    per_account: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"spam": 0, "legitimate": 0, "unfiltered": 0})
    for row in incoming:
        for key in ("spam", "legitimate", "unfiltered"):
            value = row[key]
            per_account[str(row["account"])][key] += value if isinstance(value, int) else 0
    return render(
        request, "statistics.html.j2", period=period, periods=PERIODS, account=account or "",
        outgoing=outgoing, incoming=incoming, per_account=dict(sorted(per_account.items())),
        outgoing_chart=bar_chart("Outgoing mail per day", span,
                                 [Series(k, by_day(span, outgoing, k)) for k in OUTGOING_KINDS]),
        incoming_chart=bar_chart("Incoming mail per day", span,
                                 [Series(k, by_day(span, incoming, k))
                                  for k in ("legitimate", "spam")]))


PAGE = Page(
    routes=[Route("/statistics", statistics, methods=["GET"])],
    nav=[NavItem("Statistics", "/statistics", Audience.ANYONE, 30)],
    requires=["incoming"],
)
