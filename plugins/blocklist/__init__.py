"""Blocklists ("Block From"), the mirror of the whitelists: senders whose incoming mail is
refused (550) or junked, and recipients outgoing mail may not be sent to (refused, 550),
each for the whole server or one account.  See docs/blocklist.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from ie_core import App, Stage, hookimpl
from ie_core.runtime import RuntimeSetting

from .cli import blocklist
from .stage import SENDER_ACTION, make_stage


@hookimpl
def ie_stages(app: App) -> Sequence[Stage]:
    return [make_stage(app)]


@hookimpl
def ie_runtime_settings() -> Sequence[RuntimeSetting]:
    return [SENDER_ACTION]


@hookimpl
def ie_cli_commands() -> Sequence[click.Command]:
    return [blocklist]


@hookimpl
def ie_migration_locations() -> Sequence[str]:
    return [str(Path(__file__).parent / "migrations")]
