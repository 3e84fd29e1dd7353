"""Passwords (Argon2 hashes) and the login rate limit, both in the database."""

from __future__ import annotations

from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select

from ie_core import App, InvalidInput

from .models import WebCredential, WebLoginFailure

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_hasher = PasswordHasher()


def check_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"the password must have at most {MAX_PASSWORD} characters")
    return password


def set_password(app: App, name: str, password: str) -> None:
    hashed = _hasher.hash(check_new_password(password))
    with app.db.session() as s:
        row = s.get(WebCredential, name)
        if row is None:
            s.add(WebCredential(name=name, password_hash=hashed, updated_at=app.clock.now()))
        else:
            row.password_hash, row.updated_at = hashed, app.clock.now()


def password_matches(app: App, name: str, password: str) -> bool:
    """Does ``password`` open ``name``?  A name without a password never matches (the
    hash is still computed, so the answer takes as long either way)."""
    with app.db.session() as s:
        row = s.get(WebCredential, name)
        stored = row.password_hash if row is not None else None
    if len(password) > MAX_PASSWORD:
        return False
    try:
        if stored is None:
            _hasher.hash(password)
            return False
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def has_password(app: App, name: str) -> bool:
    with app.db.session() as s:
        return s.get(WebCredential, name) is not None


def password_stamp(app: App, name: str) -> str:
    """When ``name``'s password was last set (``""``: never).  A session records it at
    login and ends when it changes: a new password logs out every earlier session."""
    with app.db.reading() as s:
        when = s.scalar(select(WebCredential.updated_at).where(WebCredential.name == name))
    return when.isoformat() if when is not None else ""


class LoginThrottle:
    """Failed logins per client address and per login name within ``web.login_window``
    seconds; once either reaches its limit, logins from there (or for that name) are
    refused without looking at the password until old failures age out."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.window = timedelta(seconds=float(app.config.get("web.login_window")))
        self.limits = {"ip": int(app.config.get("web.login_failures_per_ip")),
                       "name": int(app.config.get("web.login_failures_per_name"))}

    @staticmethod
    def keys(ip: str, name: str) -> dict[str, str]:
        return {"ip": f"ip:{ip}"[:128], "name": f"name:{name.lower()}"[:128]}

    def blocked(self, ip: str, name: str) -> bool:
        since = self.app.clock.now() - self.window
        with self.app.db.session() as s:
            for kind, key in self.keys(ip, name).items():
                failures = s.scalar(select(func.count()).select_from(WebLoginFailure)
                                    .where(WebLoginFailure.key == key,
                                           WebLoginFailure.at > since))
                if int(failures or 0) >= self.limits[kind]:
                    return True
        return False

    def failed(self, ip: str, name: str) -> None:
        now = self.app.clock.now()
        with self.app.db.session() as s:
            s.add_all([WebLoginFailure(key=key, at=now) for key in self.keys(ip, name).values()])
            s.execute(delete(WebLoginFailure).where(WebLoginFailure.at < now - self.window))
