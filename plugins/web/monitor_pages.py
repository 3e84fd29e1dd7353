"""The Activity Monitor (admin): what each account, domain, sender address and PHP script
sent and had held in a timeframe, against its limit; from a row, set or remove its
limit, whitelist it (after a confirmation), or open its held mail.

The figures come from ``ratelimit.stats.stats`` (what ``ie-cli am stats`` prints), the
changes go through ``ratelimit.limits.set_object_limit`` (``am limit set``) and
``whitelist.store.add`` (``whitelist sender add``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ie_core import InvalidInput
from ie_core.durations import parse_duration
from ie_plugins.ratelimit.limits import WHITELISTABLE, server_settings, set_object_limit
from ie_plugins.ratelimit.stats import Filters, stats
from ie_plugins.whitelist import store as whitelist
from ie_plugins.whitelist.addresses import parse_entry

from .pages import (
    Audience,
    NavItem,
    Page,
    Viewer,
    admin_page,
    audit,
    flash,
    form,
    ie_app,
    redirect,
    render,
    whole_number,
)

TIMEFRAMES = {"1h": "last hour", "6h": "last 6 hours", "24h": "last day", "7d": "last week",
              "30d": "last 30 days"}
SEARCH_FIELDS = {"account": "account", "domain": "domain", "sender": "sender address",
                 "script": "script"}
PER_PAGE = 25


def _query(request: Request) -> dict[str, str]:
    q = {"since": request.query_params.get("since", "1h"),
         "field": request.query_params.get("field", "account"),
         "q": request.query_params.get("q", "").strip()[:320],
         "page": request.query_params.get("page", "1")}
    if q["since"] not in TIMEFRAMES:
        q["since"] = "1h"
    if q["field"] not in SEARCH_FIELDS:
        q["field"] = "account"
    page = whole_number(q["page"])
    if page is None or not 1 <= page <= 100_000:
        q["page"] = "1"
    return q


def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``am stats`` tree as table rows, parents first: each row has ``type``,
    ``depth``, its figures, ``over`` (at or over its limit now) and the quarantine
    filter that shows its held mail."""
    out: list[dict[str, Any]] = []

    def add(node: dict[str, Any], so_type: str, depth: int, account: str,
            held: dict[str, str]) -> None:
        out.append({**node, "type": so_type, "depth": depth, "account": account,
                    "over": bool(node["rateLimited"]),
                    "whitelistable": so_type in WHITELISTABLE and not node["whitelisted"],
                    "held_link": "/quarantine?" + urlencode({"account": account, **held})})

    for acc in data["accounts"]:
        add(acc, "account", 0, acc["name"], {})
        for dom in acc["domains"]:
            add(dom, "domain", 1, acc["name"], {"sender": "@" + dom["name"]})
            for snd in dom["sender_emails"]:
                add(snd, "sender_email", 2, acc["name"], {"sender": snd["name"]})
        for script in acc["scripts"] or []:
            add(script, "script", 1, acc["name"], {})
    return out


@admin_page
def monitor(request: Request, viewer: Viewer) -> Response:
    q = _query(request)
    wanted = {q["field"]: q["q"]} if q["q"] else {}
    filters = Filters(account_name=wanted.get("account"), domain=wanted.get("domain"),
                      sender_email=wanted.get("sender"), script_name=wanted.get("script"))
    page = int(q["page"])
    app = ie_app(request)
    data = stats(app, parse_duration(q["since"]), filters, PER_PAGE + 1,
                 (page - 1) * PER_PAGE)
    more = len(data["accounts"]) > PER_PAGE
    data["accounts"] = data["accounts"][:PER_PAGE]
    base = {k: v for k, v in q.items() if k != "page"}
    return render(request, "monitor.html.j2", rows=rows(data), query=q,
                  timeframes=TIMEFRAMES, fields=SEARCH_FIELDS,
                  settings=server_settings(app).as_json(), page=page,
                  prev_link=f"/monitor?{urlencode({**base, 'page': page - 1})}",
                  next_link=f"/monitor?{urlencode({**base, 'page': page + 1})}" if more
                  else None, here=f"/monitor?{urlencode(q)}")


def _back(data: Any) -> str:
    back = str(data.get("back", "/monitor"))
    return back if back.startswith("/monitor") else "/monitor"


@admin_page
def set_limit(request: Request, viewer: Viewer) -> Response:
    """``limit`` empty or ``default`` removes the object's own limit."""
    data = form(request)
    text = str(data.get("limit", "")).strip()
    number = whole_number(text)
    if text in ("", "default"):
        limit = -1
    elif number is not None and number >= 0:
        limit = number
    else:
        raise InvalidInput(f"a limit is a whole number (0: unlimited) or empty for the "
                           f"default, not {text[:40]!r}")
    result = set_object_limit(ie_app(request), str(data.get("id", "")),
                              str(data.get("so_type", "")), limit)
    audit(request, "sender_limit", id=result["id"], so_type=result["so_type"],
          name=result["name"], limit="default" if limit == -1 else limit)
    shown = "the default" if limit == -1 else ("unlimited" if limit == 0 else f"{limit} an hour")
    flash(request, f"Limit of {result['so_type']} {result['name']}: {shown}.", "ok")
    return redirect(_back(data))


def _whitelist_entry(so_type: str, name: str) -> str:
    if so_type not in WHITELISTABLE:
        raise InvalidInput("only a domain or a sender address can be whitelisted")
    return parse_entry("sender", name)


@admin_page
def whitelist_confirm(request: Request, viewer: Viewer) -> Response:
    so_type = request.query_params.get("so_type", "")
    entry = _whitelist_entry(so_type, request.query_params.get("name", ""))
    return render(request, "monitor_whitelist.html.j2", entry=entry, so_type=so_type,
                  back=_back(request.query_params))


@admin_page
def whitelist_add(request: Request, viewer: Viewer) -> Response:
    data = form(request)
    entry = _whitelist_entry(str(data.get("so_type", "")), str(data.get("name", "")))
    whitelist.add(ie_app(request), "sender", [entry])
    audit(request, "whitelist_add", kind="sender", entry=entry)
    flash(request, f"{entry} is on the sender whitelist: no send limit applies to it "
                   f"(the account's own limit still does).", "ok")
    return redirect(_back(data))


PAGE = Page(
    routes=[Route("/monitor", monitor, methods=["GET"]),
            Route("/monitor/limit", set_limit, methods=["POST"]),
            Route("/monitor/whitelist", whitelist_confirm, methods=["GET"]),
            Route("/monitor/whitelist", whitelist_add, methods=["POST"])],
    nav=[NavItem("Activity", "/monitor", Audience.ADMIN, 20)],
    requires=["ratelimit", "whitelist"],
)
