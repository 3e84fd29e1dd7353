"""``ie-cli``: the operations surface (quarantine, accounts, limits, statistics...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ie_cli.base import IeGroup, setup_state
from ie_cli.version import version

if TYPE_CHECKING:
    from ie_core.app import App


def _plugin_commands(app: App) -> list[click.Command]:
    from ie_cli import filter_settings

    return [*app.hooks.cli_commands(app), filter_settings.build(app.hooks)]


@click.pass_context
def _root(ctx: click.Context, config: str | None, data_dir: str | None) -> None:
    """Operate ie: quarantine, accounts, whitelists, limits, statistics."""
    setup_state(ctx)


def build() -> IeGroup:
    """A new ``ie-cli`` group: its plugin commands are loaded by its first command, from
    that command's configuration (ie-filterd builds one per command it runs)."""
    group = IeGroup(
        "ie-cli", callback=_root, help=_root.__doc__,
        params=[click.Option(["--config"], envvar="IE_CONFIG",
                             help="configuration file (default /etc/ie/ie.toml)"),
                click.Option(["--data-dir"], help="override ie.data_dir")],
        plugin_commands=_plugin_commands,
        lazy_commands={"check": "ie_cli.check:check",
                       "completion": "ie_cli.completion:completion"},
        context_settings={"help_option_names": ["-h", "--help"]})
    group.add_command(version)
    return group


ie_cli = build()

