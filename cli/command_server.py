"""The ``cli_server`` plugin: ie-filterd runs ``ie-cli`` commands sent to its socket.

A background service (once per daemon) listens on ``cli_server.socket`` (see
:mod:`ie_cli.forward` for the protocol).  Each command runs in a thread of its own with
a new ``ie-cli`` group and App built from the configuration file and data directory the
caller named, exactly as the caller's own process would have, but without the imports:
only when the caller's uid is the daemon's (the kernel says, ``SO_PEERCRED``), the file
and data directory are the daemon's own and the command is marked
:func:`~ie_core.commands.served`.  Otherwise, and when :data:`MAX_RUNNING` commands run
already, the answer is "not served" and ``ie-cli`` runs the command itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import click

from ie_core import App, create_app, hookimpl
from ie_core.background import BackgroundService
from ie_core.commands import SERVED, CliState
from ie_core.config import ConfigKey
from ie_core.unix_socket import answers, listen_at

from . import forward
from .main import build

log = logging.getLogger("ie.cli_server")

MAX_RUNNING = 4
"""Commands run at once; one more is answered "not served" (it runs in ie-cli)."""
REQUEST_DEADLINE = 10.0
"""Seconds a client has to send its request line."""


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [ConfigKey(forward.PLUGIN, "socket", str, "", "Unix socket on which ie-filterd "
                      "runs root's ie-cli commands without their start-up (mode 0600, "
                      "only for its own uid). Empty: DATA_DIR/commands.sock. To turn it "
                      "off, add cli_server to plugins.disabled.")]


@hookimpl
def ie_background(app: App) -> Sequence[BackgroundService]:
    return [BackgroundService("cli-server", CommandServer(app).serve)]


class CommandServer:
    def __init__(self, app: App) -> None:
        self.app = app
        self.path = forward.socket_path(app.config.get(f"{forward.PLUGIN}.socket"),
                                        app.data_dir)
        self._config = os.path.realpath(app.config.path) if app.config.path else None
        self._data_dir = os.path.realpath(app.data_dir)
        self._slots = threading.BoundedSemaphore(MAX_RUNNING)

    def serve(self, stop: threading.Event) -> None:
        """Accept until ``stop`` is set, then remove the socket file (if still ours)."""
        try:
            sock, inode = self._bind()
        except OSError as err:  # mail flows all the same; ie-cli runs commands itself
            log.error("event=cli_server_failed path=%s error=%s", self.path,
                      err.strerror or err)
            stop.wait()
            return
        try:
            while not stop.is_set():
                if select.select([sock], [], [], 0.5)[0]:
                    with contextlib.suppress(OSError):
                        conn, _ = sock.accept()
                        threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                         name="ie-cli-command").start()
        finally:
            sock.close()
            with contextlib.suppress(OSError):
                if self.path.stat().st_ino == inode:
                    self.path.unlink()

    def _bind(self) -> tuple[socket.socket, int]:
        """Listen on :attr:`path`, taking it over from a daemon that is gone."""
        if answers(self.path):
            raise OSError(f"another ie-filterd serves {self.path}")
        sock = listen_at(self.path, 0o600, 16)
        log.info("event=cli_server_listening path=%s", self.path)
        return sock, self.path.stat().st_ino

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            # The request is read first, whoever sends it: a client that is refused
            # before it has sent all of it would fail to send, not read the refusal.
            request = _read_request(conn)
            refusal = _refusal_for_peer(conn)
            if refusal is None and isinstance(request, str):
                refusal = request
            if refusal is None and isinstance(request, dict):
                refusal = self._refusal_for(request)
            if refusal is None and not self._slots.acquire(blocking=False):
                refusal = f"{MAX_RUNNING} commands are running already"
            if refusal is not None:
                conn.sendall(json.dumps({"served": False, "why": refusal}).encode() + b"\n")
                return
            assert isinstance(request, dict)
            try:
                self._run(conn, request["argv"])
            finally:
                self._slots.release()

    def _refusal_for(self, request: dict[str, Any]) -> str | None:
        if request.get("config") != self._config or request.get("data_dir") != self._data_dir:
            return "another configuration file or data directory than ie-filterd's"
        return None

    def _run(self, conn: socket.socket, argv: list[str]) -> None:
        started = time.monotonic()
        state = CliState(self._command_app)
        try:
            group = build()
            why = _not_served(group, argv, state)
            if why is not None:
                conn.sendall(json.dumps({"served": False, "why": why}).encode() + b"\n")
                return
            with captured() as (out, err):
                try:
                    code = group.run(argv, prog_name="ie-cli", obj=state,
                                     only_this_thread=True)
                except Exception:  # IE_DEBUG in the daemon's environment lets bugs out
                    log.exception("event=cli_command_failed command=%r", " ".join(argv)[:200])
                    print("ie-cli: error: internal error (see ie-filterd's log)",
                          file=sys.stderr)
                    code = 1
            stdout, stderr = out.getvalue(), err.getvalue()
        finally:
            if state.built:
                state.app.close()
        log.info("event=cli_command command=%r code=%d ms=%.0f", " ".join(argv)[:200], code,
                 1000 * (time.monotonic() - started))
        header = {"served": True, "code": code, "stdout": len(stdout), "stderr": len(stderr)}
        conn.sendall(json.dumps(header).encode() + b"\n" + stdout + stderr)

    def _command_app(self) -> App:
        """The App for one command: the configuration as the file says now, on the
        daemon's connection pool when it names the same database."""
        app = create_app(self._config, overrides={"ie.data_dir": self._data_dir})
        if app.config.database_url == self.app.config.database_url:
            app.share_database(self.app.db)
        return app


def _not_served(group: click.Group, argv: list[str], state: CliState) -> str | None:
    """Why this command line is not run here, ``None`` when it is: it must name a
    command marked served (the configuration is read to find the plugins' commands: when
    that fails, ie-cli says why itself)."""
    ctx = click.Context(group, info_name="ie-cli", obj=state)
    command: click.Command | None = group
    marked = False
    words = list(argv)
    try:
        with ctx:
            while isinstance(command, click.Group):
                if not words or words[0].startswith("-"):
                    return "not a command"
                command = command.get_command(ctx, words.pop(0))
                marked = marked or getattr(command, SERVED, False)
    except Exception as err:
        return f"cannot load the commands: {err}"
    return None if command is not None and marked else "a command ie-filterd does not run"


def _refusal_for_peer(conn: socket.socket) -> str | None:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    uid = struct.unpack("3i", creds)[1]
    return None if uid == os.geteuid() else f"served for uid {os.geteuid()} only"


def _read_request(conn: socket.socket) -> dict[str, Any] | str:
    """The request, or why it cannot be used."""
    deadline = time.monotonic() + REQUEST_DEADLINE
    data = bytearray()
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or len(data) > forward.MAX_LINE:
            return "request too slow or too long"
        conn.settimeout(left)
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            return "request too slow or too long"
        if not chunk:
            return "request incomplete"
        data += chunk
    try:
        request = json.loads(data)
    except (ValueError, RecursionError):
        return "malformed request"
    if (not isinstance(request, dict) or not isinstance(request.get("argv"), list)
            or not all(isinstance(w, str) for w in request["argv"])):
        return "malformed request"
    return request


class _PerThread:
    """Stands for ``sys.stdout`` or ``sys.stderr``: a thread running a command writes to
    its capture, every other thread to the stream it replaced."""

    encoding = "utf-8"  # click keeps a stream that says so as it is
    errors = "strict"

    def __init__(self, original: TextIO) -> None:
        self.original = original
        self.local = threading.local()

    def _target(self) -> Any:
        return getattr(self.local, "stream", None) or self.original

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


_install_lock = threading.Lock()


def _per_thread(name: str) -> _PerThread:
    """``sys.<name>`` as a :class:`_PerThread`, put there if it is not one (a test
    runner may have put its own stream there since)."""
    with _install_lock:
        current = getattr(sys, name)
        if not isinstance(current, _PerThread):
            current = _PerThread(current)
            setattr(sys, name, current)
        return current


@contextlib.contextmanager
def captured() -> Iterator[tuple[io.BytesIO, io.BytesIO]]:
    """What this thread writes to stdout and stderr meanwhile, as bytes."""
    streams = [_per_thread("stdout"), _per_thread("stderr")]
    buffers = [io.BytesIO(), io.BytesIO()]
    texts = [io.TextIOWrapper(b, encoding="utf-8", errors="surrogateescape",
                              write_through=True) for b in buffers]
    for stream, text in zip(streams, texts, strict=True):
        stream.local.stream = text
    try:
        yield buffers[0], buffers[1]
    finally:
        for stream, text in zip(streams, texts, strict=True):
            stream.local.stream = None
            text.flush()
            text.detach()
