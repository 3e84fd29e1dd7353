"""The top-level group class shared by ``ie-cli`` and ``ie-config``.

It adds the commands plugins contribute, builds the App lazily from ``--config`` and turns
every error into one line on stderr with a non-zero exit (``IE_DEBUG=1`` shows the
traceback).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ie_core.app import App, create_app
from ie_core.commands import CliState
from ie_core.errors import IeError


class IeGroup(click.Group):
    """A click group whose errors are one line, never a traceback."""

    def __init__(self, *args: Any, plugin_commands: Callable[[App], list[click.Command]]
                 | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugin_commands = plugin_commands
        self._loaded = False
        self._load_error: Exception | None = None

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        if self._loaded or self._plugin_commands is None:
            return
        self._loaded = True
        try:
            app = _state(ctx).app
        except Exception as err:  # reported if the command asked for is not a core one
            self._load_error = err
            return
        for cmd in self._plugin_commands(app):
            if cmd.name and cmd.name not in self.commands:
                self.add_command(cmd)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is None:
            self._load_plugin_commands(ctx)
            cmd = super().get_command(ctx, name)
            if cmd is None and self._load_error is not None:
                raise self._load_error
        return cmd

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("standalone_mode", None)
        try:
            # Not standalone: click then returns (rather than raises) a command's exit code
            # and leaves every exception to us.
            code = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except click.exceptions.Exit as e:
            code = e.exit_code
        except click.Abort:
            _error(self.name, "aborted")
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code if e.exit_code else 2)
        except IeError as e:
            _error(self.name, str(e))
        except OperationalError as e:
            _error(self.name, f"database unavailable: {str(e.orig).strip().splitlines()[0]}")
        except SQLAlchemyError as e:
            _error(self.name, f"database error: {type(e).__name__}")
        except BrokenPipeError:
            sys.exit(1)
        except Exception as e:  # a bug: still one line unless asked for the traceback
            if os.environ.get("IE_DEBUG"):
                raise
            _error(self.name, f"internal error: {type(e).__name__}: {e}")
        sys.exit(code if isinstance(code, int) else 0)


def _error(prog: str | None, message: str) -> None:
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(1)


def _state(ctx: click.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        config = root.params.get("config")
        data_dir = root.params.get("data_dir")
        overrides = {"ie.data_dir": data_dir} if data_dir else None
        root.obj = CliState(lambda: _make_app(config, overrides))
    return root.obj


def _make_app(config: str | None, overrides: dict[str, object] | None) -> App:
    return create_app(config, overrides=overrides)


def setup_state(ctx: click.Context) -> None:
    """Called by the group callback so commands find the CliState."""
    _state(ctx)
