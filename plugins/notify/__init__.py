"""Notifications: tells the server admin and account owners about held mail, limits and
blocked accounts, once each (docs/notifications.md).

The service is ``ie-notifyd`` (:mod:`ie_plugins.notify.daemon`); ``ie-cli notify`` sends
digests and template samples by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from ie_core import App, ConfigKey, StatusItem, hookimpl
from ie_core.runtime import RuntimeSetting
from ie_plugins.notify import models, options
from ie_plugins.notify.commands import notify


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return options.CONFIG_KEYS


@hookimpl
def ie_runtime_settings() -> Sequence[RuntimeSetting]:
    return options.RUNTIME_SETTINGS


@hookimpl
def ie_cli_commands() -> Sequence[click.Command]:
    return [notify]


@hookimpl
def ie_status(app: App) -> Sequence[StatusItem]:
    try:
        with app.db.session() as s:
            counts: dict[str, int] = dict(s.execute(select(models.Notification.state, func.count())
                                    .group_by(models.Notification.state)).all())
    except SQLAlchemyError as err:
        return [StatusItem("notifications", False, f"ledger unreadable: {type(err).__name__}",
                           required=False)]
    failed, pending = counts.get(models.FAILED, 0), counts.get(models.PENDING, 0)
    return [StatusItem("notifications", failed == 0,
                       f"{pending} pending, {failed} failed (ie-cli notify list --state "
                       "failed)", required=False)]


@hookimpl
def ie_migration_locations() -> Sequence[str]:
    return [str(Path(__file__).parent / "migrations")]
