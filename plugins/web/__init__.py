"""ie-web: the web pages of ie for the server admin and account owners (docs/web.md).

An ASGI application (Starlette, served by uvicorn as ``ie-web``), pages rendered with
Jinja2, no JavaScript needed.  Views hold no logic: they call the same service layer as
``ie-cli`` (e.g. :class:`ie_plugins.quarantine.service.QuarantineService`) as the viewer.
Being a front end, this is the one plugin that imports others (their service modules);
a page names the plugins it needs (``Page.requires``) and is left out when one is
disabled.

Adding a page
-------------
1. Make a module named ``something_pages.py`` in this package (it is found by its name,
   no list to edit).  It defines ``PAGE = Page(routes=[...], nav=[...], requires=[...])``
   (:mod:`.pages`): Starlette routes, the navigation entries (``NavItem(title, path,
   audience, order)``) and the ie plugins it needs (left out when one is disabled).
2. Write views as plain functions ``def view(request, viewer) -> Response`` guarded by
   ``@admin_page`` (admin only), ``@owner_page`` (account owners only) or ``@any_page``
   (both; scope what you show by ``viewer.account``, ``None`` meaning every account).
   Anonymous visitors are sent to the login form; an owner opening an admin page gets
   "no such page".  Views run in a worker thread, so they may call blocking services.
3. Render with ``render(request, "your.html.j2", **values)``; templates extend
   ``base.html.j2`` (navigation, who is logged in, flashed messages) and every form
   carries ``<input type="hidden" name="csrf" value="{{ csrf }}">``.  POST bodies are
   read and checked by the CSRF middleware: read fields with ``form(request)``.
4. After a change: ``audit(request, "what", key=value...)`` logs who did it, ``flash()``
   a message and ``redirect()`` (303) back to a page.  Service errors
   (``InvalidInput``, ``NotFound``, ``PermissionDenied``) become 400/404/403 pages by
   themselves.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import click

from ie_core import App, ConfigKey, StatusItem, hookimpl
from ie_core.config import parse_hostport, show_hostport

from . import cli
from .signing import login_link

DAY = 86400.0


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey("web", "listen", str, "127.0.0.1:8025", "Address and port ie-web listens "
                  "on (put it behind your reverse proxy; docs/web.md)."),
        ConfigKey("web", "public_url", str, "", "Where people reach ie-web, e.g. "
                  "https://mail.example.com/ie (used in the login links of the owners' "
                  "digests). Empty: the digests carry no link."),
        ConfigKey("web", "login_link_ttl", float, 3 * DAY, "Seconds an owner's login link "
                  "stays valid."),
        ConfigKey("web", "session_lifetime", float, 8 * 3600.0, "Seconds a login lasts."),
        ConfigKey("web", "secure_cookie", bool, True, "Send the session cookie over HTTPS "
                  "only (turn off only when ie-web is reached over plain HTTP on loopback)."),
        ConfigKey("web", "login_window", float, 900.0, "Seconds over which failed logins "
                  "are counted."),
        ConfigKey("web", "login_failures_per_ip", int, 20, "Failed logins from one address "
                  "within web.login_window before logins from there are refused."),
        ConfigKey("web", "login_failures_per_name", int, 5, "Failed logins for one name "
                  "within web.login_window before logins for it are refused."),
    ]


@hookimpl
def ie_cli_commands() -> Sequence[click.Command]:
    return [cli.web]


@hookimpl
def ie_owner_login_link(app: App, account: str) -> str | None:
    return login_link(app, account)


@hookimpl
def ie_status(app: App) -> Sequence[StatusItem]:
    listen = app.config.get("web.listen")
    if not listen:
        return [StatusItem("web", True, "off (web.listen is empty)", required=False)]
    host, port = parse_hostport(listen, "web.listen")
    url = f"http://{show_hostport((host, port))}/login"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return [StatusItem("web", True, f"ie-web answers on {url} ({resp.status})",
                               required=False)]
    except urllib.error.HTTPError as err:
        return [StatusItem("web", False, f"{url} answers {err.code}", required=False)]
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return [StatusItem("web", False, f"ie-web not answering on {url} ({reason})",
                           required=False)]


@hookimpl
def ie_migration_locations() -> Sequence[str]:
    return [str(Path(__file__).parent / "migrations")]
