"""The local socket through which non-root ``ie-cli`` users reach the quarantine.

The daemon serves it (started by ``ie_startup``).  The kernel tells us who connected
(``SO_PEERCRED``): uid 0 is root, any other uid acts as the hosting account named like
its Unix user.  The request is one JSON line ``{"op": ..., "args": {...}}``; the answer
is one JSON line ``{"ok": true, "result": ...}`` or ``{"ok": false, "kind": ...,
"error": "one line"}``.  The rules are all in :mod:`.service`.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from ie_core import IeError, InvalidInput, NotFound, PermissionDenied

from .service import Caller, QuarantineService, dispatch

log = logging.getLogger("ie.quarantine.socket")

MAX_REQUEST = 1 << 20
READ_TIMEOUT = 10.0
CLIENT_TIMEOUT = 600.0
MAX_CONNECTIONS = 16
_KINDS: dict[type[IeError], str] = {NotFound: "not_found", PermissionDenied: "denied",
                                    InvalidInput: "invalid"}


def peer_caller(conn: socket.socket) -> Caller | None:
    """The connected process's user, as the kernel reports it."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    if uid == 0:
        return Caller.root()
    try:
        return Caller(pwd.getpwuid(uid).pw_name, False)
    except KeyError:
        return None


class CliSocketServer:
    """Accepts connections in a thread; each request runs in a thread of its own.

    ``tick`` (if given) is called every ``tick_interval`` seconds from the accept thread
    (the quarantine's file sweeper).
    """

    def __init__(self, service: QuarantineService, path: str,
                 tick: Callable[[], object] | None = None, tick_interval: float = 3600.0) -> None:
        self.service = service
        self.path = Path(path) if path else None
        self._tick = tick
        self._tick_interval = tick_interval
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._thread = threading.Thread(target=self._loop, name="ie-quarantine-cli",
                                        daemon=True)

    def start(self) -> CliSocketServer:
        if self.path is not None:
            try:
                self._sock = self._bind(self.path)
            except OSError as err:  # mail must flow even if owners' CLI cannot be served
                log.error("event=cli_socket_failed path=%s error=%s; non-root ie-cli users "
                          "cannot reach the quarantine (set quarantine.cli_socket)",
                          self.path, err.strerror or err)
        self._thread.start()
        return self

    def _bind(self, path: Path) -> socket.socket | None:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o755)
            os.chmod(path.parent, 0o755)
        if path.exists() or path.is_symlink():
            if _is_live(path):
                log.error("event=cli_socket_in_use path=%s (another ie-filterd serves it)", path)
                return None
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        os.chmod(path, 0o666)
        sock.listen(64)
        self._inode = path.stat().st_ino
        log.info("event=cli_socket_listening path=%s", path)
        return sock

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
            try:  # only our own socket file, not one a newer daemon bound since
                if self.path is not None and self.path.stat().st_ino == self._inode:
                    self.path.unlink()
            except OSError:
                pass

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            if self._tick is not None and time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self._tick_interval
                try:
                    self._tick()
                except Exception:
                    log.exception("event=quarantine_tick_failed")
            if self._sock is None:
                self._stop.wait(0.5)
                continue
            ready, _, _ = select.select([self._sock], [], [], 0.5)
            if not ready:
                continue
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            if not self._slots.acquire(blocking=False):
                _answer(conn, {"ok": False, "kind": "error", "error": "service busy, try again"})
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(READ_TIMEOUT)
                _answer(conn, self._handle(conn))
        except OSError as err:
            log.info("event=cli_socket_client_gone error=%s", err)
        finally:
            self._slots.release()

    def _handle(self, conn: socket.socket) -> dict[str, Any]:
        caller = peer_caller(conn)
        if caller is None:
            return {"ok": False, "kind": "denied", "error": "your uid has no user name"}
        try:
            request = json.loads(_read_line(conn))
            op, args = request.get("op"), request.get("args", {})
        except (ValueError, AttributeError):
            return {"ok": False, "kind": "invalid", "error": "malformed request"}
        try:
            result = dispatch(self.service, caller, op, args)
        except IeError as err:
            return {"ok": False, "kind": _KINDS.get(type(err), "error"), "error": str(err)}
        except OperationalError as err:
            log.error("event=cli_request_failed op=%s user=%s error=%s", op, caller.user, err)
            return {"ok": False, "kind": "error", "error": "database unavailable"}
        except Exception:
            log.exception("event=cli_request_failed op=%s user=%s", op, caller.user)
            return {"ok": False, "kind": "error", "error": "internal error (see the ie log)"}
        log.info("event=cli_request op=%s user=%s", op, caller.user)
        return {"ok": True, "result": result}


def _is_live(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def _read_line(conn: socket.socket) -> bytes:
    data = bytearray()
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("request too large")
    return bytes(data.split(b"\n", 1)[0])


def _answer(conn: socket.socket, reply: dict[str, Any]) -> None:
    conn.sendall(json.dumps(reply).encode("utf-8") + b"\n")


# -- the client side (ie-cli as a non-root user) --------------------------------------
_ERRORS: dict[str, type[IeError]] = {v: k for k, v in _KINDS.items()}


def call(path: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """Ask the service at ``path``; raise the error it answers as an IeError."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CLIENT_TIMEOUT)
        try:
            sock.connect(path)
            sock.sendall(json.dumps({"op": op, "args": args}).encode("utf-8") + b"\n")
            data = bytearray()
            while chunk := sock.recv(1 << 16):
                data += chunk
        except OSError as err:
            raise IeError(f"cannot reach the ie service at {path}: "
                          f"{err.strerror or err} (is ie-filterd running?)") from None
    try:
        reply = json.loads(bytes(data))
    except ValueError:
        raise IeError(f"the ie service at {path} gave no valid answer") from None
    if reply.get("ok"):
        result: dict[str, Any] = reply.get("result") or {}
        return result
    raise _ERRORS.get(reply.get("kind"), IeError)(str(reply.get("error", "failed")))
