"""What a page module uses: :class:`Page`, who is looking (:class:`Viewer`), the
``@admin_page`` / ``@owner_page`` guards, rendering, the submitted form and the action log.

See the package docstring (``ie_plugins.web``) for how to add a page.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import quote

from jinja2 import Environment
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from ie_core import App

from .credentials import password_stamp
from .csrf import FIELD, new_token
from .models import ADMIN

log = logging.getLogger("ie.web")


class Audience(Enum):
    ADMIN = "admin"   # the server admin only
    OWNER = "owner"   # account owners only
    ANYONE = "anyone"  # both (each sees what is theirs)


@dataclass(frozen=True)
class Viewer:
    """Who is logged in: the admin (``root``) or the owner of account ``name``."""

    name: str

    @property
    def is_admin(self) -> bool:
        return self.name == ADMIN

    @property
    def account(self) -> str | None:
        """The one account an owner may see; ``None`` for the admin (every account)."""
        return None if self.is_admin else self.name

    def may_see(self, audience: Audience) -> bool:
        return (audience is Audience.ANYONE
                or (audience is Audience.ADMIN) == self.is_admin)


@dataclass(frozen=True)
class NavItem:
    title: str
    path: str
    audience: Audience
    order: int


@dataclass(frozen=True)
class Page:
    """A page module's contribution: its routes, its navigation entries, and the ie
    plugins it needs (the page is left out when one of them is disabled)."""

    routes: Sequence[BaseRoute]
    nav: Sequence[NavItem] = ()
    requires: Sequence[str] = ()


@dataclass
class WebState:
    """Per-process state every view reaches through :func:`web_state`: the ie ``App``,
    the templates, the navigation and long-lived service objects."""

    app: App
    templates: Environment
    nav: list[NavItem] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def service(self, name: str, make: Callable[[], Any]) -> Any:
        """One object per process (e.g. the quarantine service), made on first use and
        closed (``close()``) when ie-web stops.  Views run in several threads at once:
        the object must be safe for that (ie's services are)."""
        with self.lock:
            if name not in self.services:
                self.services[name] = make()
            return self.services[name]

    def close(self) -> None:
        with self.lock:
            for obj in self.services.values():
                closer = getattr(obj, "close", None)
                if closer is not None:
                    closer()
            self.services.clear()


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.ie
    return state


def ie_app(request: Request) -> App:
    return web_state(request).app


# -- who is looking -----------------------------------------------------------------
def viewer_of(request: Request) -> Viewer | None:
    """The logged-in viewer; ``None`` when nobody is, the login is older than
    ``web.session_lifetime`` (the cookie is renewed on every page, the login is not) or
    the password changed since.  Worked out once per request."""
    if "ie.viewer" not in request.scope:
        request.scope["ie.viewer"] = _session_viewer(request)
    viewer: Viewer | None = request.scope["ie.viewer"]
    return viewer


def _session_viewer(request: Request) -> Viewer | None:
    name, since = request.session.get("user"), request.session.get("since")
    if not isinstance(name, str) or not name or not isinstance(since, int):
        return None
    app = ie_app(request)
    if time.time() - since > float(app.config.get("web.session_lifetime")):
        return None
    if request.session.get("stamp") != password_stamp(app, name):
        return None  # the password changed since this login
    return Viewer(name)


def start_session(request: Request, name: str) -> None:
    """A fresh session for ``name``: nothing from before the login is carried over, the
    CSRF token included."""
    request.session.clear()
    request.session.update({"user": name, "since": int(time.time()), FIELD: new_token(),
                            "stamp": password_stamp(ie_app(request), name)})
    request.scope.pop("ie.viewer", None)


def password_changed(request: Request, viewer: Viewer) -> None:
    """``viewer`` set a new password: this session goes on, every other one ends."""
    request.session["stamp"] = password_stamp(ie_app(request), viewer.name)


Handler = Callable[[Request, Viewer], Response]


def _guard(audience: Audience) -> Callable[[Handler], Callable[[Request], Response]]:
    def decorate(handler: Handler) -> Callable[[Request], Response]:
        @functools.wraps(handler)
        def endpoint(request: Request) -> Response:
            viewer = viewer_of(request)
            if viewer is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query
                                             else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            if not viewer.may_see(audience):
                return error_page(request, 404, "No such page.")
            return handler(request, viewer)
        return endpoint
    return decorate


admin_page = _guard(Audience.ADMIN)
"""``@admin_page def view(request, viewer)``: the admin only; others get 'no such page',
anonymous visitors the login form."""

owner_page = _guard(Audience.OWNER)
"""Account owners only (``viewer.account`` is theirs)."""

any_page = _guard(Audience.ANYONE)
"""Admin and owners; the view must scope what it shows by ``viewer.account``."""


# -- forms ---------------------------------------------------------------------------
_WHOLE = re.compile(r"-?[0-9]{1,18}")


def whole_number(text: str) -> int | None:
    """``text`` as a whole number (ASCII digits, an optional minus, at most 18 digits);
    ``None`` for anything else (``"²"``, ``"1e3"``, ten thousand digits), never an
    exception."""
    text = text.strip()
    return int(text) if _WHOLE.fullmatch(text) else None


def form(request: Request) -> FormData:
    """The submitted form of a POST (already read and its CSRF token checked by the
    middleware, so views are plain functions)."""
    data: FormData = request.scope.get("ie.form", FormData())
    return data


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        raise RuntimeError("the CSRF middleware did not run")
    return token


# -- output --------------------------------------------------------------------------
def flash(request: Request, message: str, kind: str = "info") -> None:
    """A message shown once, on the next page rendered for this session."""
    request.session.setdefault("flash", []).append([kind, message[:500]])


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    state = web_state(request)
    viewer = viewer_of(request)
    messages = request.session.pop("flash", []) if "flash" in request.session else []
    nav = [n for n in state.nav if viewer is not None and viewer.may_see(n.audience)]
    path = request.url.path
    current = max((n.path for n in nav if path == n.path or path.startswith(n.path + "/")),
                  key=len, default=None)
    html = state.templates.get_template(template).render(
        request=request, viewer=viewer, csrf=csrf_token(request), nav=nav,
        current_nav=current, flashes=messages, **values)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html.j2", status=status, status_code=status, message=message)


def redirect(path: str) -> RedirectResponse:
    """After a POST: 303 to a page of ours (never to an address from the request)."""
    if not path.startswith("/") or path.startswith("//"):
        path = "/"
    return RedirectResponse(path, status_code=303)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "-"


def audit(request: Request, action: str, **details: Any) -> None:
    """Log what was done, by whom, from where (one ``key=value`` line per action)."""
    viewer = viewer_of(request)
    fields = " ".join(f"{k}={_logsafe(v)}" for k, v in details.items())
    log.info("event=web_action actor=%s ip=%s action=%s %s",
             viewer.name if viewer else "-", client_ip(request), action, fields)


def _logsafe(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return "".join(c if c.isprintable() and not c.isspace() else "_" for c in text)[:300] or "-"
