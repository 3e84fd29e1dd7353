"""The top-level group class shared by ``ie-cli`` and ``ie-config``.

It adds the commands plugins contribute, builds the App lazily from ``--config`` and turns
every error into one line on stderr with a non-zero exit; log records (WARNING and above)
are one line each too (``IE_DEBUG=1`` shows the tracebacks).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import click

from ie_core.commands import CliState, print_error
from ie_core.errors import IeError

if TYPE_CHECKING:
    from ie_core.app import App


class IeGroup(click.Group):
    """A click group whose errors are one line, never a traceback."""

    def __init__(self, *args: Any, plugin_commands: Callable[[App], list[click.Command]]
                 | None = None, lazy_commands: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugin_commands = plugin_commands
        self._lazy = dict(lazy_commands or {})
        self._loaded = False
        self._load_error: Exception | None = None

    def _load_lazy(self, name: str) -> None:
        """Import a core command named in ``lazy_commands`` ("module:attribute") when it
        is first asked for: a command that needs none of them starts without them."""
        target = self._lazy.pop(name, None)
        if target is not None:
            module, attribute = target.split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)

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
        for name in list(self._lazy):
            self._load_lazy(name)
        self._load_plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._load_lazy(name)
        cmd = super().get_command(ctx, name)
        if cmd is None:
            self._load_plugin_commands(ctx)
            cmd = super().get_command(ctx, name)
            if cmd is None and self._load_error is not None:
                raise self._load_error
        return cmd

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("standalone_mode", None)
        sys.exit(self.run(*args, **kwargs))

    def run(self, *args: Any, only_this_thread: bool = False, **kwargs: Any) -> int:
        """Run the command ``main`` would and return its exit code.  With
        ``only_this_thread`` the log records printed on stderr are only this thread's
        (ie-filterd running a command beside its own work)."""
        prog = self.name or "ie"
        with log_to_stderr(prog, only_this_thread):
            return self._run(prog, *args, **kwargs)

    def _run(self, prog: str, *args: Any, **kwargs: Any) -> int:
        """The command's exit code; every error is reported here, on one line."""
        try:
            # Not standalone: click then returns (rather than raises) a command's exit code
            # and leaves every exception to us.
            code = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except click.exceptions.Exit as e:
            return e.exit_code
        except click.Abort:
            message = "aborted"
        except click.ClickException as e:
            e.show()
            return e.exit_code if e.exit_code else 2
        except IeError as e:
            message = str(e)
        except BrokenPipeError:
            return 1
        except Exception as e:  # a bug: still one line unless asked for the traceback
            database = database_error(e)
            if database is not None:
                message = database
            elif debugging():
                raise
            else:
                message = f"internal error: {type(e).__name__}: {e}"
        else:
            return code if isinstance(code, int) else 0
        print_error(prog, message)
        return 1


def database_error(err: BaseException) -> str | None:
    """The one line for a database error, ``None`` for any other.  SQLAlchemy is only
    looked at when something loaded it (a command that never touched the database
    cannot have raised its errors), so commands that need none start quicker."""
    exc = sys.modules.get("sqlalchemy.exc")
    if exc is None or not isinstance(err, exc.SQLAlchemyError):
        return None
    from ie_core.db import describe_error

    return describe_error(err)


def debugging() -> bool:
    """``IE_DEBUG=1``: show tracebacks instead of one-line errors."""
    return bool(os.environ.get("IE_DEBUG"))


@contextlib.contextmanager
def log_to_stderr(prog: str, only_this_thread: bool = False) -> Iterator[None]:
    """While a command runs, print log records of WARNING and above on stderr, one line
    each, without the traceback (``IE_DEBUG=1`` shows it); with ``only_this_thread``
    only the records the calling thread makes."""
    handler = _StderrHandler(logging.WARNING)
    if only_this_thread:
        thread = threading.get_ident()
        handler.addFilter(lambda record: record.thread == thread)
    handler.setFormatter(logging.Formatter(f"{prog}: %(levelname)s: %(name)s: %(message)s")
                         if debugging() else _OneLineFormatter(prog))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


class _StderrHandler(logging.Handler):
    """Writes to ``sys.stderr`` as it is when the record comes (click's test runner and
    pytest replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


class _OneLineFormatter(logging.Formatter):
    """``PROG: LEVEL: message (what the exception said)`` on one line."""

    def __init__(self, prog: str) -> None:
        super().__init__()
        self._prog = prog

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        err = record.exc_info[1] if record.exc_info else None
        database = database_error(err) if err is not None else None
        if database is not None:
            text += f" ({database})"
        elif err is not None:
            text += f" ({type(err).__name__}: {err})"
        return " ".join(f"{self._prog}: {record.levelname.lower()}: {text}".split())


def _state(ctx: click.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        config = root.params.get("config")
        data_dir = root.params.get("data_dir")
        overrides = {"ie.data_dir": data_dir} if data_dir else None
        root.obj = CliState(lambda: _make_app(config, overrides))
    return root.obj


def _make_app(config: str | None, overrides: dict[str, object] | None) -> App:
    from ie_core.app import create_app

    return create_app(config, overrides=overrides)


def setup_state(ctx: click.Context) -> None:
    """Called by the group callback so commands find the CliState."""
    _state(ctx)
