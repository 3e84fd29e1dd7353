"""Local (Unix) sockets that ie-filterd serves: bound where a client never finds a
socket that does not listen yet."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def answers(path: Path) -> bool:
    """Whether something listens on the socket at ``path`` (another daemon)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def listen_at(path: Path, mode: int, backlog: int) -> socket.socket:
    """A socket listening at ``path`` with file mode ``mode``: bound and listening under
    a temporary name, then renamed into place, so that a client that sees the path can
    connect (never 'connection refused' between bind and listen).  A socket file left by
    a daemon that is gone is replaced; the caller checks :func:`answers` first."""
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(staging))
        os.chmod(staging, mode)
        sock.listen(backlog)
        os.replace(staging, path)
    except OSError:
        sock.close()
        staging.unlink(missing_ok=True)
        raise
    return sock
