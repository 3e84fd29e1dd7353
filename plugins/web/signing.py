"""The signing secret shared by every ie-web process, and the owners' login links.

The secret is made on first use and kept in the database (``web_secrets``), so that
several ie-web processes on one PostgreSQL accept each other's cookies, and the
notifier signs links that any of them opens.
"""

from __future__ import annotations

import secrets

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError

from ie_core import App
from ie_core.identity import valid_account

from .models import ADMIN, WebSecret

SESSION_KEY = "session"
LINK_SALT = "ie-web owner login link"


def secret(app: App, name: str = SESSION_KEY) -> str:
    """The secret called ``name``, made (randomly, once) if it does not exist yet."""
    for _ in range(2):
        with app.db.session() as s:
            row = s.get(WebSecret, name)
            if row is not None:
                return row.value
        try:
            with app.db.session() as s:
                s.add(WebSecret(name=name, value=secrets.token_urlsafe(48),
                                created_at=app.clock.now()))
        except IntegrityError:  # another process made it first: read theirs
            continue
    raise RuntimeError(f"web secret {name!r} could not be stored")


def _links(app: App) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret(app), salt=LINK_SALT)


def login_token(app: App, account: str) -> str:
    """A token that opens ``account`` (and nothing else) until it expires."""
    if not owner_account(account):
        raise ValueError(f"no login link for {account!r}")
    return _links(app).dumps({"account": account})


def account_of_token(app: App, token: str) -> str | None:
    """The account a valid, unexpired token opens; ``None`` for anything else."""
    ttl = int(app.config.get("web.login_link_ttl"))
    try:
        data = _links(app).loads(token, max_age=ttl)
    except (SignatureExpired, BadSignature):
        return None
    account = data.get("account") if isinstance(data, dict) else None
    if not owner_account(account):
        return None
    return str(account)


def owner_account(name: object) -> bool:
    """Is ``name`` an account an owner may log in to?  Never ``root``: that name is the
    admin's, who sees every account."""
    return isinstance(name, str) and name != ADMIN and valid_account(name)


def login_link(app: App, account: str) -> str | None:
    """The full address of ``account``'s login link, or ``None`` when ``web.public_url``
    (where people reach ie-web) is not set."""
    base = str(app.config.get("web.public_url")).rstrip("/")
    if not base or not owner_account(account):
        return None
    return f"{base}/login/link?token={login_token(app, account)}"
