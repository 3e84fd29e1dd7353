"""The three tiers: server default per object type, per-object override, whitelist."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from ie_core import App, InvalidInput, NotFound

from .models import ACCOUNT, DOMAIN, SCRIPT, SENDER_EMAIL, SO_TYPES, SenderObject

MODE_MESSAGES = 1
MODE_RECIPIENTS = 2
_PREFIX = "ratelimit.server."
WHITELISTABLE = (DOMAIN, SENDER_EMAIL)
MAX_LIMIT = 2**31 - 1  # limit_override is an Integer column


@dataclass(frozen=True)
class ServerSettings:
    """Default hourly limit per object type (``0``: unlimited) and the limit mode
    (1: messages, 2: distinct envelope recipients)."""

    account: int = 0
    domain: int = 0
    script: int = 0
    sender_email: int = 0
    limit_mode: int = MODE_MESSAGES

    def default_for(self, so_type: str) -> int:
        return {ACCOUNT: self.account, DOMAIN: self.domain, SCRIPT: self.script,
                SENDER_EMAIL: self.sender_email}[so_type]

    def as_json(self) -> dict[str, int]:
        return asdict(self)


def server_settings(app: App) -> ServerSettings:
    base = ServerSettings()
    values = {name: app.settings.get(_PREFIX + name) for name in base.as_json()}
    return ServerSettings(**{k: int(v) for k, v in values.items() if v is not None})


def save_server_settings(app: App, changes: dict[str, int]) -> ServerSettings:
    """Apply ``changes`` (``-1`` or absent: unchanged); raises :class:`InvalidInput`
    before changing anything."""
    for name, value in changes.items():
        if name == "limit_mode":
            if value not in (-1, MODE_MESSAGES, MODE_RECIPIENTS):
                raise InvalidInput(f"--limit-mode takes 1 (messages) or 2 (recipients), "
                                   f"not {value}")
        elif name not in SO_TYPES:
            raise InvalidInput(f"unknown server setting {name!r}")
        elif value < -1:
            raise InvalidInput(f"--{name.replace('_', '-')} takes a limit >= 0 "
                               f"(0: unlimited, -1: unchanged), not {value}")
    with app.db.session() as s:
        for name, value in changes.items():
            if value != -1:
                app.settings.set(_PREFIX + name, value, session=s)
    app.settings.invalidate()
    return server_settings(app)


def effective_limit(settings: ServerSettings, so_type: str, override: int | None,
                    whitelisted: bool) -> int:
    """The limit in force (``0``: unlimited): whitelist beats override beats default."""
    if whitelisted and so_type in WHITELISTABLE:
        return 0
    if override is not None:
        return override
    return settings.default_for(so_type)


def is_whitelisted(app: App, so_type: str, name: str) -> bool:
    return so_type in WHITELISTABLE and app.hooks.is_whitelisted(app, "sender", name)


def set_object_limit(app: App, object_id: str, so_type: str, limit: int) -> dict[str, Any]:
    """Override one sender object's hourly limit (``0``: unlimited) or, with ``-1``,
    remove the override; its over-limit mark is cleared.  What ``am limit set`` and the
    web Activity Monitor call."""
    if so_type not in SO_TYPES:
        raise InvalidInput(f"unknown --so-type {so_type[:40]!r} (one of "
                           f"{', '.join(SO_TYPES)})")
    try:
        object_id = str(uuid.UUID(object_id.strip()))
    except ValueError:
        raise InvalidInput(f"--id {object_id[:60]!r} is not a UUID") from None
    if not -1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"--limit takes 0 (unlimited), a number up to {MAX_LIMIT} or -1 "
                           f"(remove the override), not {limit}")
    with app.db.session() as s:
        obj = s.get(SenderObject, object_id, with_for_update=True)
        if obj is None:
            raise NotFound(f"no sender object has id {object_id}")
        if obj.so_type != so_type:
            raise InvalidInput(f"id {object_id} is a {obj.so_type}, not a {so_type}")
        obj.limit_override = None if limit == -1 else limit
        obj.limited_at = None
        return {"success": True, "id": obj.id, "so_type": obj.so_type, "name": obj.name,
                "limit": obj.limit_override}
