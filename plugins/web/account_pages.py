"""An account owner's own settings: the switches plugins declare for accounts (incoming
filtering on/off, the notification address ...) and the owner's login password."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ie_core import InvalidInput

from .credentials import has_password, set_password
from .pages import (
    Audience,
    NavItem,
    Page,
    Viewer,
    audit,
    flash,
    form,
    ie_app,
    owner_page,
    password_changed,
    redirect,
    render,
)
from .quarantine_pages import caller, service


@owner_page
def settings(request: Request, viewer: Viewer) -> Response:
    app = ie_app(request)
    [row] = service(request).accounts_list(caller(viewer), viewer.name)["items"]
    options = [{"name": o.name, "choices": list(o.choices), "doc": o.doc,
                "value": row.get(o.name, "")} for o in app.hooks.account_options()]
    return render(request, "account.html.j2", row=row, options=options,
                  has_password=has_password(app, viewer.name))


@owner_page
def save_options(request: Request, viewer: Viewer) -> Response:
    """Only the fields that differ from what is in force are sent (an empty free-text
    field means "default", as ``ie-cli accounts edit --owner-email default``)."""
    data = form(request)
    [row] = service(request).accounts_list(caller(viewer), viewer.name)["items"]
    chosen = {}
    for option in ie_app(request).hooks.account_options():
        if option.name not in data:
            continue
        value = str(data[option.name]).strip()
        if value != str(row.get(option.name, "")):
            chosen[option.name] = value if value or option.choices else "default"
    if not chosen:
        flash(request, "Nothing changed.")
        return redirect("/account")
    service(request).accounts_edit(caller(viewer), viewer.name, options=chosen)
    audit(request, "account_settings", **chosen)
    flash(request, "Settings saved.", "ok")
    return redirect("/account")


@owner_page
def save_password(request: Request, viewer: Viewer) -> Response:
    data = form(request)
    new, again = str(data.get("password", "")), str(data.get("again", ""))
    if new != again:
        raise InvalidInput("the two passwords differ")
    set_password(ie_app(request), viewer.name, new)
    password_changed(request, viewer)
    audit(request, "password_set")
    flash(request, "Password set: you can now log in with the account name and it. "
                   "Your other sessions have ended.", "ok")
    return redirect("/account")


PAGE = Page(
    routes=[Route("/account", settings, methods=["GET"]),
            Route("/account/options", save_options, methods=["POST"]),
            Route("/account/password", save_password, methods=["POST"])],
    nav=[NavItem("Account", "/account", Audience.OWNER, 90)],
    requires=["quarantine"],
)
