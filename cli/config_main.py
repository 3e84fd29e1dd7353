"""``ie-config``: deployment and service control."""

from __future__ import annotations

import click

from ie_cli.base import IeGroup, setup_state
from ie_cli.version import version
from ie_core.commands import emit_ok, get_app


@click.group(cls=IeGroup, plugin_commands=lambda app: app.hooks.config_commands(app),
             lazy_commands={"status": "ie_cli.status:status",
                            "reload": "ie_cli.service:reload", "stop": "ie_cli.service:stop"},
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", envvar="IE_CONFIG", help="configuration file (default /etc/ie/ie.toml)")
@click.option("--data-dir", help="override ie.data_dir")
@click.pass_context
def ie_config(ctx: click.Context, config: str | None, data_dir: str | None) -> None:
    """Deploy and control ie: status, MTA and Dovecot wiring, database."""
    setup_state(ctx)


@ie_config.group("db")
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the schema or bring it to the current version."""
    from ie_core.db import migrate

    app = get_app()
    migrate.upgrade(app.db, hooks=app.hooks)
    emit_ok()


@db.command("check")
def db_check() -> None:
    """Exit non-zero unless the schema is current (the heads of core and of every loaded
    plugin applied)."""
    from ie_core.db import migrate

    app = get_app()
    migrate.check(app.db, hooks=app.hooks)
    click.echo("schema is current: " + ", ".join(sorted(migrate.current_heads(app.db))))


ie_config.add_command(version)
