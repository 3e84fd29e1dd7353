"""Running an ``ie-cli`` command in ie-filterd, which has everything loaded already.

A command that opens the database spends most of its time importing (SQLAlchemy, the
plugins and their tables) before its first query.  ie-filterd serves the commands
marked :func:`ie_core.commands.served` on a Unix socket (``cli_server.socket``, by
default ``DATA_DIR/commands.sock``, mode 0600, only for the daemon's own uid): ``ie-cli``
sends the command line there and prints what comes back; anything else (the socket
absent or refused, a command not served, ``IE_DEBUG``) runs here as before.  This
module is the client and the protocol, light enough to import before click's work.

The request is one JSON line ``{"argv": [...], "config": PATH|null, "data_dir": PATH}``
(the root options already taken off ``argv``); the answer one JSON line, either
``{"served": false, "why": "..."}`` or ``{"served": true, "code": N, "stdout": A,
"stderr": B}`` followed by A bytes of standard output and B of standard error.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from ie_core import config as cfg

PLUGIN = "cli_server"
"""The plugin's entry-point name: ``plugins.disabled = ["cli_server"]`` turns it off."""
SOCKET_NAME = "commands.sock"
MAX_LINE = 64 * 1024
"""Bytes a request or answer line may take."""
CONNECT_TIMEOUT = 2.0
LOCAL_ONLY = frozenset({"version", "completion", "check", "learn", "top"})
"""Commands never served: asking would only cost the round trip."""
COMPLETION_VARIABLE = "_IE_CLI_COMPLETE"
"""Set by the shell when it asks click for completions: always answered here."""


def main() -> None:
    """The ``ie-cli`` program: the command as ie-filterd runs it when it serves it, else
    here (only then are click and the commands imported)."""
    code = forward(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from ie_cli.main import ie_cli

    ie_cli()


class Unanswered(Exception):
    """The request went out and no complete answer came: the command may have run."""


def socket_path(given: object, data_dir: Path) -> Path:
    """Where the socket is: ``cli_server.socket`` as ``given``, else in ``data_dir``."""
    return Path(given) if isinstance(given, str) and given else data_dir / SOCKET_NAME


def split_root_options(argv: list[str]) -> tuple[str | None, str | None, list[str]] | None:
    """``--config`` and ``--data-dir`` (the root group's options) and the rest; ``None``
    for anything else before the command (``--help``, a mistake: shown by click here)."""
    values: dict[str, str | None] = {"--config": None, "--data-dir": None}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, value = argv[i].partition("=")
        if name not in values:
            return None
        if not eq:
            i += 1
            if i >= len(argv):
                return None
            value = argv[i]
        values[name] = value
        i += 1
    return values["--config"], values["--data-dir"], argv[i:]


def request_for(argv: list[str]) -> tuple[Path, dict[str, Any]] | None:
    """The socket and the request for this command line, ``None`` when it is to run
    here (reading the configuration failed: running here reports why)."""
    if os.environ.get("IE_DEBUG") or COMPLETION_VARIABLE in os.environ:
        return None
    split = split_root_options(argv)
    if split is None:
        return None
    config, data_dir_option, rest = split
    if not rest or rest[0] in LOCAL_ONLY or "-h" in rest or "--help" in rest:
        return None
    try:
        path, required = cfg.resolve_path(config)
        raw = cfg.read_raw(path, required)
        if PLUGIN in cfg.disabled_plugins(raw):
            return None
        core, ours = (_table(raw, name) for name in ("ie", PLUGIN))
        data_dir = Path(data_dir_option or core.get("data_dir") or cfg.default_data_dir())
        where = socket_path(ours.get("socket"), data_dir)
    except Exception:
        return None
    request = {"argv": rest, "config": os.path.realpath(path) if path.is_file() else None,
               "data_dir": os.path.realpath(data_dir)}
    if len(json.dumps(request)) >= MAX_LINE:  # thousands of addresses: the daemon refuses
        return None
    return where, request


def _table(raw: dict[str, Any], name: str) -> dict[str, Any]:
    table = raw.get(name)
    return table if isinstance(table, dict) else {}


def forward(argv: list[str]) -> int | None:
    """The exit code of the command as ie-filterd ran it (its output copied to ours),
    or ``None``: run it here.  When the daemon took the command and then gave no
    complete answer, say so on stderr and return 1 rather than run it a second time."""
    planned = request_for(argv)
    if planned is None:
        return None
    where, request = planned
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CONNECT_TIMEOUT)
            try:
                sock.connect(str(where))
            except (OSError, ValueError):  # not running, not ours, a path too long
                return None
            sock.settimeout(None)  # a command takes as long as it takes
            try:
                return _exchange(sock, request)
            except OSError as err:
                raise Unanswered(err.strerror or str(err)) from None
    except Unanswered as err:
        print(f"ie-cli: error: ie-filterd ({where}) took the command but gave no complete "
              f"answer ({err}); it may or may not have run", file=sys.stderr)
        return 1


def _exchange(sock: socket.socket, request: dict[str, Any]) -> int | None:
    sock.sendall(json.dumps(request).encode() + b"\n")
    reader = sock.makefile("rb")
    line = reader.readline(MAX_LINE)
    if not line.endswith(b"\n"):
        raise Unanswered("the connection closed")
    try:
        answer = json.loads(line)
        if not answer["served"]:
            return None
        code, out_size, err_size = (int(answer[k]) for k in ("code", "stdout", "stderr"))
    except (ValueError, KeyError, TypeError):
        raise Unanswered("an answer that is not the protocol's") from None
    out, err = _read_exact(reader, out_size), _read_exact(reader, err_size)
    for data, stream in ((out, sys.stdout), (err, sys.stderr)):
        try:
            stream.buffer.write(data)
            stream.buffer.flush()
        except BrokenPipeError:  # our reader went away (| head): as a local command
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())  # no flush error
            return 1
    return code


def _read_exact(reader: Any, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise Unanswered(f"the output ended {size - len(data)} bytes short")
    return bytes(data)
