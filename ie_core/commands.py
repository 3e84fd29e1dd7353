"""Helpers for ``ie-cli`` / ``ie-config`` commands, core's and plugins' alike.

Output rules: data goes to stdout as text or, with ``--json``, as one JSON document;
errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import pwd
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from ie_core.app import App
from ie_core.errors import PermissionDenied


class CliState:
    """Stored as ``click.Context.obj`` by the top-level groups; builds the App lazily."""

    def __init__(self, factory: Callable[[], App]) -> None:
        self._factory = factory
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = self._factory()
        return self._app


def get_app() -> App:
    state = click.get_current_context().find_object(CliState)
    if state is None:
        raise RuntimeError("command run outside ie-cli/ie-config")
    return state.app


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line on stderr and exit non-zero."""
    raise click.exceptions.Exit(_print_error(message, code))


def _print_error(message: str, code: int) -> int:
    prog = click.get_current_context().find_root().info_name or "ie"
    click.echo(f"{prog}: error: {' '.join(str(message).split())}", err=True)
    return code


def emit(data: Any, as_json: bool, text: Callable[[], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=None, sort_keys=False, default=str))
    else:
        out = text()
        if out:
            click.echo(out)


def emit_ok() -> None:
    click.echo("OK")


def caller_uid() -> int:
    return os.getuid()


def is_root() -> bool:
    return caller_uid() == 0


def caller_name() -> str:
    try:
        return pwd.getpwuid(caller_uid()).pw_name
    except KeyError:
        return str(caller_uid())


def require_root() -> None:
    if not is_root():
        raise PermissionDenied("this command is for root only")


def echo_err(message: str) -> None:
    print(message, file=sys.stderr)
