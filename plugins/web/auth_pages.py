"""Logging in and out: the admin and owners by password, owners by a signed login link."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .credentials import LoginThrottle, password_matches
from .models import ADMIN
from .pages import (
    Page,
    audit,
    client_ip,
    error_page,
    form,
    ie_app,
    redirect,
    render,
    start_session,
    viewer_of,
    web_state,
)
from .signing import account_of_token, owner_account

REFUSED = "Wrong name or password."
THROTTLED = "Too many failed logins: wait a few minutes before trying again."


def home(request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return redirect("/login")
    for item in web_state(request).nav:
        if viewer.may_see(item.audience):
            return redirect(item.path)
    return error_page(request, 404, "No pages to show: the plugins ie-web shows are "
                      "disabled.")


def login_form(request: Request) -> Response:
    return render(request, "login.html.j2", next=_local(request.query_params.get("next")),
                  name="", error=None)


def login(request: Request) -> Response:
    data = form(request)
    name = str(data.get("name", "")).strip()[:64]
    password = str(data.get("password", ""))
    target = _local(str(data.get("next", "")))
    app, ip = ie_app(request), client_ip(request)
    throttle = LoginThrottle(app)
    if throttle.blocked(ip, name):
        audit(request, "login_throttled", name=name)
        return render(request, "login.html.j2", status=429, next=target, name=name,
                      error=THROTTLED)
    known = name == ADMIN or owner_account(name)
    if not (known and password_matches(app, name, password)):
        throttle.failed(ip, name)
        audit(request, "login_failed", name=name)
        return render(request, "login.html.j2", status=401, next=target, name=name,
                      error=REFUSED)
    start_session(request, name)
    audit(request, "login", method="password")
    return redirect(target or "/")


def link_form(request: Request) -> Response:
    """The link from the digest shows one button: a mail scanner that fetches the link
    logs nobody in, and the login itself is a same-site POST, so the browser keeps the
    strict session cookie on the pages that follow."""
    token = request.query_params.get("token", "")
    account = account_of_token(ie_app(request), token)
    return render(request, "login_link.html.j2", status=200 if account else 400,
                  account=account, token=token)


def link_login(request: Request) -> Response:
    account = account_of_token(ie_app(request), str(form(request).get("token", "")))
    if account is None:
        audit(request, "login_failed", method="link")
        return render(request, "login_link.html.j2", status=400, account=None, token="")
    start_session(request, account)
    audit(request, "login", method="link")
    return redirect("/")


def logout(request: Request) -> Response:
    audit(request, "logout")
    request.session.clear()
    request.scope.pop("ie.viewer", None)
    return redirect("/login")


def _local(target: str | None) -> str:
    """``next`` only when it is a path on this site."""
    if not target:
        return ""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return ""
    return target


PAGE = Page(routes=[
    Route("/", home),
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/login/link", link_form, methods=["GET"]),
    Route("/login/link", link_login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
])
