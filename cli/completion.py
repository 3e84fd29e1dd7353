"""``ie-cli completion bash|zsh|fish``: the shell completion script, as Imunify Email's
``ie-cli completion`` prints one.  Install it once, e.g.
``ie-cli completion bash > /etc/bash_completion.d/ie-cli``."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish)."""
    root = ctx.find_root()
    prog = root.info_name or "ie-cli"
    cls = get_completion_class(shell)
    assert cls is not None  # the choice allows only shells click knows
    var = "_" + prog.replace("-", "_").upper() + "_COMPLETE"
    click.echo(cls(root.command, {}, prog, var).source())
