"""Held mail: the filtered list, one message (rendered, headers, text, raw .eml),
release and delete, and the history of what left the quarantine.

The admin sees every account; an owner only their own: the quarantine service is called
as the viewer (``Caller``), so its rules (scope, hourly release limit, an id of another
account answering like an unknown one) apply to every request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ie_core import InvalidInput
from ie_plugins.quarantine.service import Caller, QuarantineService

from .message_view import html_body
from .pages import (
    Audience,
    NavItem,
    Page,
    Viewer,
    any_page,
    audit,
    flash,
    form,
    ie_app,
    redirect,
    render,
    web_state,
    whole_number,
)

PER_PAGE = 50
REASONS = ("spam", "winexec", "virus", "unscanned", "ratelimit", "blocked")
SINCE = {"": "any time", "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days",
         "30d": "last 30 days"}
FILTERS = ("account", "direction", "reason", "sender", "recipient", "since", "date_from",
           "date_to")
DIRECTIONS = {"": "both", "outgoing": "outgoing", "incoming": "incoming"}
ACTIONS = {"release": "released", "delete": "deleted", "spam": "deleted as spam"}
VIEWS = ("rendered", "headers", "text")


def service(request: Request) -> QuarantineService:
    app = ie_app(request)
    svc: QuarantineService = web_state(request).service("quarantine",
                                                        lambda: QuarantineService(app))
    return svc


def caller(viewer: Viewer) -> Caller:
    return Caller.root() if viewer.is_admin else Caller(viewer.name, False)


def _filters(request: Request, viewer: Viewer) -> dict[str, str]:
    given = {k: request.query_params.get(k, "").strip()[:320] for k in FILTERS}
    if not viewer.is_admin:
        given["account"] = ""
    if given["since"] not in SINCE:
        given["since"] = ""
    if given["direction"] not in DIRECTIONS:
        given["direction"] = ""
    return given


def page_number(request: Request, name: str = "page") -> int:
    """The page asked for in query parameter ``name`` (1 when absent or not a number)."""
    raw = request.query_params.get(name, "1")
    page = whole_number(raw)
    return page if page is not None and 1 <= page < 10**6 else 1


@any_page
def held_list(request: Request, viewer: Viewer) -> Response:
    filters = _filters(request, viewer)
    page = page_number(request)
    args: dict[str, Any] = {k: v for k, v in filters.items() if v}
    result = service(request).emails_list(caller(viewer), limit=PER_PAGE,
                                          offset=(page - 1) * PER_PAGE, **args)
    total = result["max_count"]
    pages = max(1, -(-total // PER_PAGE))
    query = {k: v for k, v in filters.items() if v}
    releases = (None if viewer.is_admin
                else service(request).releases_left(caller(viewer)))
    return render(request, "quarantine_list.html.j2", items=result["items"], total=total,
                  filters=filters, reasons=REASONS, since_choices=SINCE, page=page,
                  directions=DIRECTIONS,
                  pages=pages, query=query, releases=releases,
                  here=request.url.path + (f"?{request.url.query}" if request.url.query
                                           else ""),
                  page_link=lambda n: "/quarantine?" + urlencode({**query, "page": n}))


@any_page
def act(request: Request, viewer: Viewer) -> Response:
    """Release, delete or delete as spam the ticked messages, then back to the list."""
    data = form(request)
    action = str(data.get("action", ""))
    ids = [str(i) for i in data.getlist("ids")]
    back = str(data.get("back", "/quarantine"))
    if not back.startswith("/quarantine"):
        back = "/quarantine"
    if action not in ACTIONS or (action == "spam" and not viewer.is_admin):
        raise InvalidInput("unknown action")
    if not ids:
        flash(request, "Tick at least one message first.", "error")
        return redirect(back)
    svc, who = service(request), caller(viewer)
    joined = ",".join(ids)
    if action == "release":
        result = svc.emails_release(who, joined)
    else:
        result = svc.emails_remove(who, joined, spam=action == "spam")
    audit(request, f"quarantine_{action}", ids=result["done"], failed=list(result["failed"]))
    if result["done"]:
        flash(request, f"{len(result['done'])} message(s) {ACTIONS[action]}.", "ok")
    for held_id, why in result["failed"].items():
        flash(request, f"{held_id}: {why}", "error")
    if back.startswith("/quarantine/") and result["done"] and len(ids) == 1:
        back = "/quarantine"  # the message shown is gone
    return redirect(back)


@any_page
def message(request: Request, viewer: Viewer) -> Response:
    held_id = request.path_params["id"]
    view = request.query_params.get("view", "rendered")
    if view not in VIEWS:
        view = "rendered"
    svc, who = service(request), caller(viewer)
    shown = svc.emails_show(who, held_id)
    html = None
    if view == "rendered":
        with svc.emails_raw(who, held_id) as stream:
            html = html_body(stream)
    audit(request, "quarantine_view", id=held_id, view=view)
    return render(request, "quarantine_message.html.j2", m=shown, view=view, html=html,
                  views=VIEWS, releases=None if viewer.is_admin
                  else svc.releases_left(who))


@any_page
def raw(request: Request, viewer: Viewer) -> Response:
    held_id = request.path_params["id"]
    stream = service(request).emails_raw(caller(viewer), held_id)
    audit(request, "quarantine_download", id=held_id)

    def chunks() -> Any:
        with stream:
            while chunk := stream.read(65536):
                yield chunk

    return StreamingResponse(chunks(), media_type="message/rfc822", headers={
        "content-disposition": f'attachment; filename="{held_id}.eml"'})


@any_page
def history(request: Request, viewer: Viewer) -> Response:
    page = page_number(request)
    result = service(request).emails_history(caller(viewer), limit=PER_PAGE,
                                             offset=(page - 1) * PER_PAGE)
    pages = max(1, -(-result["max_count"] // PER_PAGE))
    return render(request, "quarantine_history.html.j2", items=result["items"],
                  total=result["max_count"], page=page, pages=pages)


PAGE = Page(
    routes=[
        Route("/quarantine", held_list, methods=["GET"]),
        Route("/quarantine/action", act, methods=["POST"]),
        Route("/quarantine/history", history, methods=["GET"]),
        Route("/quarantine/{id}", message, methods=["GET"]),
        Route("/quarantine/{id}/raw", raw, methods=["GET"]),
    ],
    nav=[NavItem("Quarantine", "/quarantine", Audience.ANYONE, 10),
         NavItem("History", "/quarantine/history", Audience.ANYONE, 15)],
    requires=["quarantine"],
)
