"""``ie-cli check``: run the pipeline on messages without delivering, holding or counting."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ie_core import Direction, MessageContext
from ie_core.commands import fail, get_app
from ie_core.db import migrate
from ie_core.processor import analyse

MAX_CHECK_SIZE = 256 * 1024 * 1024


@click.command("check")
@click.argument("files", nargs=-1)
@click.option("--direction", type=click.Choice([d.value for d in Direction]),
              default=Direction.OUTGOING.value, show_default=True)
@click.option("--mail-from", default="", help="envelope sender to assume")
@click.option("--rcpt", "rcpts", multiple=True, help="envelope recipient to assume (repeatable)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per message")
def check(files: tuple[str, ...], direction: str, mail_from: str, rcpts: tuple[str, ...],
          as_json: bool) -> None:
    """Show the findings, reasons, score and action for FILE... (or - for stdin).

    Exits 1 if a message could not be checked (a stage failed: its verdict is a tempfail
    and the error is logged on stderr)."""
    app = get_app()
    migrate.check(app.db, hooks=app.hooks)
    stages = app.stages(Direction(direction))
    failed = False
    for name in files or ("-",):
        raw = _read(name)
        ctx = MessageContext(direction=Direction(direction), raw=raw, mail_from=mail_from,
                             rcpt_tos=list(rcpts), received_at=app.clock.now(), dry_run=True)
        verdict = analyse(app, ctx, stages)
        failed = failed or verdict.error is not None
        result = {
            "file": name, "action": verdict.action.value, "score": verdict.score,
            "reasons": verdict.reasons, "account": ctx.identity.account, "error": verdict.error,
            "findings": [{"stage": f.stage, "reason": f.reason, "score": f.score,
                          "action": f.action.value, "detail": f.detail}
                         for f in verdict.findings],
        }
        if as_json:
            click.echo(json.dumps(result))
        else:
            click.echo(f"{name}: action={result['action']} score={verdict.score:.2f} "
                       f"reasons={','.join(verdict.reasons) or '-'} account={ctx.identity.account}")
            for f in verdict.findings:
                click.echo(f"  {f.stage}: reason={f.reason or '-'} score={f.score:.2f} "
                           f"action={f.action.value} {f.detail}".rstrip())
    if failed:
        raise click.exceptions.Exit(1)


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read(MAX_CHECK_SIZE)
    path = Path(name)
    try:
        if path.stat().st_size > MAX_CHECK_SIZE:
            fail(f"{name}: larger than {MAX_CHECK_SIZE} bytes")
        return path.read_bytes()
    except IsADirectoryError:
        fail(f"{name}: is a directory")
    except OSError as err:
        fail(f"{name}: {err.strerror}")
