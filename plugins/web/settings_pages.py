"""Settings (admin): server send limits and their mode, quarantine defaults, the
per-account table (state, storage, releases, the switches plugins declare, purge), the
run-time filter settings and the whitelists.  Each form calls what the matching ``ie-cli``
command calls, so the same checks and errors apply."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ie_core import InvalidInput
from ie_core.runtime import RuntimeSetting, change, current
from ie_plugins.ratelimit.limits import save_server_settings, server_settings
from ie_plugins.whitelist import store as whitelist
from ie_plugins.whitelist.addresses import parse_entry
from ie_plugins.whitelist.models import KINDS

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
from .quarantine_pages import PER_PAGE, caller, page_number, service

LIMIT_FIELDS = ("account", "domain", "sender_email", "script")
MB = 1024 * 1024


def _specs(request: Request) -> list[RuntimeSetting]:
    return sorted(ie_app(request).hooks.runtime_settings(), key=lambda s: s.name)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@admin_page
def settings(request: Request, viewer: Viewer) -> Response:
    app = ie_app(request)
    svc = service(request)
    root = caller(viewer)
    filters = [{"name": s.name, "doc": s.doc, "value": _shown(current(app, s)),
                "choices": (["yes", "no"] if s.type is bool else list(s.choices)),
                "default": _shown(s.default)} for s in _specs(request)]
    options = [{"name": o.name, "choices": list(o.choices), "doc": o.doc}
               for o in app.hooks.account_options()]
    page = page_number(request, "accounts_page")
    accounts = svc.accounts_list(root, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    return render(request, "settings.html.j2", limits=server_settings(app).as_json(),
                  limit_fields=LIMIT_FIELDS, defaults=svc.defaults_list(root), mb=MB,
                  accounts=accounts["items"], options=options, filters=filters,
                  accounts_page=page, accounts_pages=max(1, -(-accounts["max_count"]
                                                              // PER_PAGE)),
                  whitelists={kind: whitelist.entries(app, kind) for kind in KINDS})


def _number(data: Any, name: str) -> int | None:
    """A whole number from the form; ``None`` when the field is empty (unchanged)."""
    text = str(data.get(name, "")).strip()
    if not text:
        return None
    number = whole_number(text)
    if number is None:
        raise InvalidInput(f"{name.replace('_', ' ')} takes a whole number, not {text[:40]!r}")
    return number


@admin_page
def save_limits(request: Request, viewer: Viewer) -> Response:
    data = form(request)
    changes = {name: value for name in (*LIMIT_FIELDS, "limit_mode")
               if (value := _number(data, name)) is not None}
    values = save_server_settings(ie_app(request), changes).as_json()
    audit(request, "server_limits", **changes)
    flash(request, "Send limits saved: " + ", ".join(f"{k} {v}" for k, v in values.items()),
          "ok")
    return redirect("/settings")


@admin_page
def save_defaults(request: Request, viewer: Viewer) -> Response:
    data = form(request)
    result = service(request).defaults_set(
        caller(viewer), releases_limit=_number(data, "releases_limit"),
        storage_capacity=_number(data, "storage_mb"))
    audit(request, "quarantine_defaults", **result)
    flash(request, f"Quarantine defaults saved: {result['limit_bytes'] // MB} MB per account, "
                   f"{result['releases_limit']} releases an hour.", "ok")
    return redirect("/settings")


@admin_page
def save_account(request: Request, viewer: Viewer) -> Response:
    """Only what differs from the row as shown is sent (``ie-cli accounts edit``)."""
    data = form(request)
    svc, who = service(request), caller(viewer)
    name = str(data.get("name", ""))
    [row] = svc.accounts_list(who, name)["items"] or [{}]
    changes: dict[str, Any] = {}
    if str(data.get("state", "")) and data.get("state") != row.get("state"):
        changes["state"] = str(data.get("state"))
    for field in ("limit_bytes", "releases_limit"):
        value = _number(data, field)
        if value is not None and value != row.get(field):
            changes["limit" if field == "limit_bytes" else field] = value
    chosen = {}
    for option in ie_app(request).hooks.account_options():
        text = str(data.get(option.name, "")).strip()
        if option.name in data and text != str(row.get(option.name, "")):
            chosen[option.name] = text if text or option.choices else "default"
    if not changes and not chosen:
        flash(request, f"Nothing changed for {name}.")
        return redirect("/settings#accounts")
    svc.accounts_edit(who, name, options=chosen, **changes)
    audit(request, "account_edit", account=name, **changes, **chosen)
    flash(request, f"Account {name} saved.", "ok")
    return redirect("/settings#accounts")


@admin_page
def purge_account(request: Request, viewer: Viewer) -> Response:
    data = form(request)
    name = str(data.get("name", ""))
    if str(data.get("confirm", "")).strip() != name:
        raise InvalidInput(f"type the account's name ({name[:64]}) to purge its quarantine")
    result = service(request).accounts_remove(caller(viewer), name)
    audit(request, "account_purge", account=name, deleted=result["deleted"])
    flash(request, f"Quarantine of {name} purged: {result['deleted']} message(s) deleted.",
          "ok")
    return redirect("/settings#accounts")


@admin_page
def save_filters(request: Request, viewer: Viewer) -> Response:
    """Only the settings whose field differs from the value in force change."""
    data, app = form(request), ie_app(request)
    specs = _specs(request)
    changes = {}
    for spec in specs:
        text = str(data.get(spec.name, "")).strip()
        if spec.name in data and text != _shown(current(app, spec)):
            changes[spec.name] = spec.parse(text)
    if not changes:
        flash(request, "Nothing changed.")
        return redirect("/settings#filters")
    change(app, specs, changes)
    audit(request, "filter_settings", **{k: "default" if v is None else v
                                         for k, v in changes.items()})
    flash(request, "Filter settings saved: " + ", ".join(sorted(changes)), "ok")
    return redirect("/settings#filters")


@admin_page
def edit_whitelist(request: Request, viewer: Viewer) -> Response:
    data = form(request)
    kind = str(data.get("kind", ""))
    if kind not in KINDS:
        raise InvalidInput(f"no whitelist is called {kind[:40]!r}")
    entry = parse_entry(kind, str(data.get("value", "")))
    if data.get("action") == "remove":
        whitelist.remove(ie_app(request), kind, [entry])
        verb = "removed from"
    else:
        whitelist.add(ie_app(request), kind, [entry])
        verb = "added to"
    audit(request, "whitelist_" + ("remove" if verb == "removed from" else "add"),
          kind=kind, entry=entry)
    flash(request, f"{entry} {verb} the {kind} whitelist.", "ok")
    return redirect("/settings#whitelists")


PAGE = Page(
    routes=[Route("/settings", settings, methods=["GET"]),
            Route("/settings/limits", save_limits, methods=["POST"]),
            Route("/settings/quarantine", save_defaults, methods=["POST"]),
            Route("/settings/account", save_account, methods=["POST"]),
            Route("/settings/account/purge", purge_account, methods=["POST"]),
            Route("/settings/filters", save_filters, methods=["POST"]),
            Route("/settings/whitelist", edit_whitelist, methods=["POST"])],
    nav=[NavItem("Settings", "/settings", Audience.ADMIN, 40)],
    requires=["quarantine", "ratelimit", "whitelist"],
)
