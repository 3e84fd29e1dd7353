"""``version``: one command object, in both ``ie-cli`` and ``ie-config``."""

from __future__ import annotations

import click

from ie_core import __version__
from ie_core.commands import emit


@click.command("version")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def version(as_json: bool) -> None:
    """Print the version."""
    emit({"version": __version__}, as_json, lambda: __version__)
