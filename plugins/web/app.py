"""The ASGI application: pages found in this package, sessions, CSRF, security headers."""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ie_core import App, InvalidInput, NotFound, PermissionDenied

from .csrf import CsrfMiddleware
from .pages import Page, WebState, error_page
from .signing import secret

COOKIE = "ie_web"
PAGE_SUFFIX = "_pages"

# No script runs on our pages; a held message's HTML is shown in a sandboxed frame
# (``srcdoc``) that inherits this policy, so it loads nothing from elsewhere either.
CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()),
           (b"x-frame-options", b"DENY"),
           (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"),  # login links carry a token
           (b"cache-control", b"no-store")]


def templates() -> Environment:
    env = Environment(loader=PackageLoader("ie_plugins.web", "templates"),
                      autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["when"] = show_time
    env.filters["size"] = show_size
    return env


def show_time(value: str | datetime) -> str:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.strftime("%Y-%m-%d %H:%M UTC")


def show_size(value: int) -> str:
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value = value / 1024  # type: ignore[assignment]
    return f"{value:.1f} GB"


def page_modules() -> Iterator[str]:
    """Every ``*_pages`` module of this package, by name (a new page needs no edit
    elsewhere)."""
    for info in pkgutil.iter_modules(importlib.import_module(__package__).__path__):
        if info.name.endswith(PAGE_SUFFIX):
            yield f"{__package__}.{info.name}"


def loaded_pages(app: App) -> list[Page]:
    found = []
    for name in sorted(page_modules()):
        page: Page = importlib.import_module(name).PAGE
        if all(app.hooks.pm.get_plugin(p) is not None for p in page.requires):
            found.append(page)
    return found


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in HEADERS if k not in names]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def create_web_app(app: App) -> Starlette:
    """ie-web for ``app`` (its configuration and database); the schema must be current."""
    state = WebState(app, templates())
    routes: list[BaseRoute] = [Mount("/static", StaticFiles(packages=[("ie_plugins.web",
                                                                       "static")]),
                                     name="static")]
    for page in loaded_pages(app):
        routes.extend(page.routes)
        state.nav.extend(page.nav)
    state.nav.sort(key=lambda n: n.order)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        state.close()

    middleware = [
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=secret(app), session_cookie=COOKIE,
                   max_age=int(app.config.get("web.session_lifetime")), same_site="strict",
                   https_only=bool(app.config.get("web.secure_cookie"))),
        Middleware(CsrfMiddleware),
    ]
    web = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={NotFound: _not_found, InvalidInput: _invalid,
                                        PermissionDenied: _denied,
                                        HTTPException: _http_error})
    web.state.ie = state
    return web


def _not_found(request: Request, exc: Exception) -> Response:
    return error_page(request, 404, str(exc))


def _invalid(request: Request, exc: Exception) -> Response:
    return error_page(request, 400, str(exc))


def _denied(request: Request, exc: Exception) -> Response:
    return error_page(request, 403, str(exc))


def _http_error(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    if "session" not in request.scope:  # refused before the session existed
        return Response(str(getattr(exc, "detail", "")), status_code=code)
    return error_page(request, code, "No such page." if code == 404 else
                      str(getattr(exc, "detail", "")))
