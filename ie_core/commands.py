"""Helpers for ``ie-cli`` / ``ie-config`` commands, core's and plugins' alike.

Output rules: data goes to stdout as text or, with ``--json``, as one JSON document;
errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from ie_core.errors import PermissionDenied

if TYPE_CHECKING:
    from ie_core.app import App


class CliState:
    """Stored as ``click.Context.obj`` by the top-level groups; builds the App lazily."""

    def __init__(self, factory: Callable[[], App]) -> None:
        self._factory = factory
        self._app: App | None = None

    @property
    def built(self) -> bool:
        return self._app is not None

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = self._factory()
        return self._app


SERVED = "ie_served"
"""The attribute :func:`served` sets on a command."""
C = TypeVar("C", bound=click.Command)


def served(command: C) -> C:
    """Mark a command that ie-filterd may run for ``ie-cli`` (already warm, so it
    answers without the start-up).  Only for a command that reads no stdin, no file
    named on its command line and asks nothing, whose output is bounded text: it runs
    in another process, with the same user, configuration and data directory.  On a
    group it marks every command of the group."""
    setattr(command, SERVED, True)
    return command


def get_app() -> App:
    state = click.get_current_context().find_object(CliState)
    if state is None:
        raise RuntimeError("command run outside ie-cli/ie-config")
    return state.app


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line on stderr and exit non-zero."""
    print_error(click.get_current_context().find_root().info_name or "ie", message)
    raise click.exceptions.Exit(code)


def print_error(prog: str, message: str) -> None:
    """``PROG: error: MESSAGE`` on stderr, folded onto one line."""
    click.echo(f"{prog}: error: {' '.join(str(message).split())}", err=True)


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


def require_root() -> None:
    if not is_root():
        raise PermissionDenied("this command is for root only")


def echo_err(message: str) -> None:
    print(message, file=sys.stderr)
