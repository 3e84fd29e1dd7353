"""The quarantine: per-account store of held outgoing mail, its limits, release and
deletion, the ``blocked`` stage and the ``ie-cli`` commands (see docs/quarantine.md).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import click
from sqlalchemy import select

from ie_core import (
    Action,
    App,
    ConfigKey,
    Direction,
    Finding,
    MessageContext,
    Stage,
    Verdict,
    hookimpl,
)
from ie_core.background import BackgroundService, periodic
from ie_core.changes import track

from . import actions, cli
from .hold import blob_store, hold
from .metrics import HeldByAccount
from .models import BLOCK, HeldMessage, QuarantineAccount
from .reinjectors import Reinjectors
from .service import QuarantineService
from .socket_api import CliSocketServer

log = logging.getLogger("ie.quarantine")

BLOCKED_PRIORITY = 150


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey("quarantine", "cli_socket", str, "/run/ie/cli.sock", "Unix socket through "
                  "which non-root ie-cli users reach the quarantine (served by ie-filterd; "
                  "mode 0666, the kernel tells who asks). Empty: not served."),
        ConfigKey("quarantine", "sweep_interval", float, 3600.0, "Seconds between sweeps that "
                  "remove message files no held row names (older than an hour)."),
    ]


ACCOUNTS = "quarantine_accounts"
"""The change counter of the accounts' quarantine states (:mod:`ie_core.changes`)."""
track(QuarantineAccount, ACCOUNTS)


def account_blocked(app: App, account: str) -> bool:
    """Whether ``account`` is in state block (the blocked accounts are cached, read
    again after a change)."""
    return account in app.cached(ACCOUNTS, "quarantine.blocked", lambda: _blocked(app))


def _blocked(app: App) -> frozenset[str]:
    with app.db.reading() as s:
        return frozenset(s.scalars(select(QuarantineAccount.name)
                                   .where(QuarantineAccount.state == BLOCK)))


@hookimpl
def ie_stages(app: App) -> Sequence[Stage]:
    def blocked(ctx: MessageContext) -> Finding | None:
        if account_blocked(app, ctx.identity.account):
            return Finding(stage="blocked", reason="blocked", action=Action.QUARANTINE,
                           detail=f"account {ctx.identity.account} is in state block")
        return None

    return [Stage(name="blocked", run=blocked, directions=frozenset({Direction.OUTGOING}),
                  priority=BLOCKED_PRIORITY,
                  description="hold all mail of an account in state block")]


@hookimpl
def ie_hold(app: App, ctx: MessageContext, verdict: Verdict) -> str | None:
    return hold(app, ctx, verdict)


@hookimpl
def ie_release(app: App, held_id: str, actor: str) -> bool | None:
    """``False`` when the message stays held; :class:`~ie_core.NotFound` (raised) when no
    held message has that id, so a caller such as auto-release stops retrying it."""
    reinjectors = Reinjectors(app)
    try:
        actions.release(app, reinjectors, held_id, actor)
    except actions.ReleaseRefused as err:
        log.warning("event=release_failed id=%s actor=%s reason=%s", held_id, actor, err)
        return False
    finally:
        reinjectors.close()
    return True


@hookimpl
def ie_cli_commands(app: App) -> Sequence[click.Command]:
    return cli.commands(app)


def sweep(app: App) -> list[str]:
    """Remove message files that no held row names (see :meth:`BlobStore.sweep`).

    The held ids are read in one query, and only once a file is old enough to be removed:
    such a file's row, if it has one, was committed long before that query.
    """
    @functools.cache
    def held_ids() -> frozenset[str]:
        with app.db.session() as s:
            return frozenset(s.scalars(select(HeldMessage.id)))

    return blob_store(app).sweep(lambda held_id: held_id in held_ids())


@hookimpl
def ie_metrics_collectors(app: App) -> Sequence[object]:
    return [HeldByAccount(app)]


@hookimpl
def ie_background(app: App) -> Sequence[BackgroundService]:
    path = app.config.get("quarantine.cli_socket")

    def serve_cli(stop: threading.Event) -> None:
        service = QuarantineService(app)
        try:
            CliSocketServer(service, path).serve(stop)
        finally:
            service.close()

    return [BackgroundService("quarantine-cli-socket", serve_cli),
            periodic("quarantine-sweep", app.config.get("quarantine.sweep_interval"),
                     lambda: sweep(app), first=0)]


@hookimpl
def ie_migration_locations() -> Sequence[str]:
    return [str(Path(__file__).parent / "migrations")]
