"""The local socket through which non-root ``ie-cli`` users reach the quarantine.

The daemon serves it (a background service, once per ie-filterd).  The kernel tells us who connected
(``SO_PEERCRED``): uid 0 is root, any other uid acts as the hosting account named like
its Unix user.  The request is one JSON line ``{"op": ..., "args": {...}}``; the answer
is one JSON line ``{"ok": true, "result": ...}`` or ``{"ok": false, "kind": ...,
"error": "one line"}``.  A streaming operation (``emails.raw``) answers
``{"ok": true, "result": {"size": N}}`` and then the N bytes of the message, sent in
chunks (the client checks that all N arrived).  The rules are all in :mod:`.service`.

One local user must not be able to hold or bloat the service: a request has a total
deadline and a size cap however slowly it arrives, one uid holds at most
:data:`MAX_PER_UID` of the :data:`MAX_CONNECTIONS` slots, a JSON request nested too deeply
gets a one-line error, and raw messages are streamed, never read whole.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import select
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.exc import OperationalError

from ie_core import IeError, InvalidInput, NotFound, PermissionDenied
from ie_core.unix_socket import answers, listen_at

from .service import STREAMS, Caller, QuarantineService, dispatch, open_stream

log = logging.getLogger("ie.quarantine.socket")

MAX_REQUEST = 64 * 1024
"""Bytes a request line may take (the largest real one, a list of ids, is a few KiB)."""
REQUEST_DEADLINE = 10.0
"""Seconds a client has to send its whole request line, however it trickles it."""
SEND_TIMEOUT = 30.0
"""Seconds one chunk of an answer may wait for a client that does not read."""
CLIENT_TIMEOUT = 600.0
MAX_CONNECTIONS = 16
MAX_PER_UID = 4
CHUNK = 64 * 1024
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
    """Accepts connections until stopped; each request runs in a thread of its own."""

    def __init__(self, service: QuarantineService, path: str) -> None:
        self.service = service
        self.path = Path(path) if path else None
        self._inode: int | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._per_uid: dict[int, int] = {}
        self._per_uid_lock = threading.Lock()

    def serve(self, stop: threading.Event) -> None:
        """Bind the socket and accept until ``stop`` is set; then remove the socket file."""
        sock = self._open()
        if sock is None:
            stop.wait()
            return
        try:
            while not stop.is_set():
                ready, _, _ = select.select([sock], [], [], 0.5)
                if not ready:
                    continue
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                self._admit(conn)
        finally:
            sock.close()
            try:  # only our own socket file, not one a newer daemon bound since
                if self.path is not None and self.path.stat().st_ino == self._inode:
                    self.path.unlink()
            except OSError:
                pass

    def _open(self) -> socket.socket | None:
        if self.path is None:
            return None
        try:
            return self._bind(self.path)
        except OSError as err:  # mail must flow even if owners' CLI cannot be served
            log.error("event=cli_socket_failed path=%s error=%s; non-root ie-cli users "
                      "cannot reach the quarantine (set quarantine.cli_socket)",
                      self.path, err.strerror or err)
            return None

    def _bind(self, path: Path) -> socket.socket | None:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o755)
            os.chmod(path.parent, 0o755)
        if path.exists() or path.is_symlink():
            if answers(path):
                log.error("event=cli_socket_in_use path=%s (another ie-filterd serves it)", path)
                return None
            path.unlink()
        sock = listen_at(path, 0o666, 64)
        self._inode = path.stat().st_ino
        log.info("event=cli_socket_listening path=%s", path)
        return sock

    def _admit(self, conn: socket.socket) -> None:
        """Serve ``conn`` in a thread of its own if its uid and the service have room;
        otherwise answer one line and close it."""
        uid = peer_uid(conn)
        with self._per_uid_lock:
            mine = self._per_uid.get(uid, 0)
            if mine >= MAX_PER_UID:
                busy = f"too many requests of yours at once (at most {MAX_PER_UID})"
            elif not self._slots.acquire(blocking=False):
                busy = "service busy, try again"
            else:
                busy = ""
                self._per_uid[uid] = mine + 1
        if busy:
            log.warning("event=cli_socket_refused uid=%d why=%s", uid, busy)
            with conn, contextlib.suppress(OSError):
                conn.settimeout(1.0)
                _answer(conn, {"ok": False, "kind": "error", "error": busy})
            return
        threading.Thread(target=self._serve, args=(conn, uid), daemon=True).start()

    def _serve(self, conn: socket.socket, uid: int) -> None:
        try:
            with conn:
                self._respond(conn)
        except OSError as err:
            log.info("event=cli_socket_client_gone error=%s", err)
        finally:
            with self._per_uid_lock:
                self._per_uid[uid] -= 1
                if not self._per_uid[uid]:
                    del self._per_uid[uid]
            self._slots.release()

    def _respond(self, conn: socket.socket) -> None:
        caller = peer_caller(conn)
        request = _parse(conn) if caller is not None else "no user"
        if caller is None:
            reply: dict[str, Any] = {"ok": False, "kind": "denied",
                                     "error": "your uid has no user name"}
        elif isinstance(request, str):
            reply = {"ok": False, "kind": "invalid", "error": request}
        else:
            op, args = request
            if op in STREAMS:
                self._stream(conn, caller, op, args)
                return
            reply = self._handle(caller, op, args)
        conn.settimeout(SEND_TIMEOUT)
        _answer(conn, reply)

    def _stream(self, conn: socket.socket, caller: Caller, op: str, args: Any) -> None:
        """Answer a streaming operation: the header line, then the bytes in chunks."""
        conn.settimeout(SEND_TIMEOUT)
        try:
            stream = open_stream(self.service, caller, op, args)
        except IeError as err:
            _answer(conn, {"ok": False, "kind": _KINDS.get(type(err), "error"),
                           "error": str(err)})
            return
        except Exception:
            log.exception("event=cli_request_failed op=%s user=%s", op, caller.user)
            _answer(conn, {"ok": False, "kind": "error",
                           "error": "internal error (see the ie log)"})
            return
        log.info("event=cli_request op=%s user=%s", op, caller.user)
        with stream:
            size = os.fstat(stream.fileno()).st_size
            _answer(conn, {"ok": True, "result": {"size": size}})
            while chunk := stream.read(CHUNK):
                conn.sendall(chunk)

    def _handle(self, caller: Caller, op: Any, args: Any) -> dict[str, Any]:
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


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    uid: int = struct.unpack("3i", creds)[1]
    return uid


class BadRequest(Exception):
    """The request line cannot be used (the message is the one-line answer)."""


def _read_line(conn: socket.socket) -> bytes:
    """The request line, within :data:`REQUEST_DEADLINE` in total and :data:`MAX_REQUEST`
    bytes; :class:`BadRequest` otherwise."""
    deadline = time.monotonic() + REQUEST_DEADLINE
    data = bytearray()
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BadRequest(f"request not complete within {REQUEST_DEADLINE:g} seconds")
        conn.settimeout(left)
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            raise BadRequest(f"request not complete within {REQUEST_DEADLINE:g} seconds") \
                from None
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise BadRequest(f"request larger than {MAX_REQUEST} bytes")
    return bytes(data.split(b"\n", 1)[0])


def _parse(conn: socket.socket) -> tuple[Any, Any] | str:
    """(op, args) of the request, or the one-line reason it cannot be used."""
    try:
        request = json.loads(_read_line(conn))
        return request.get("op"), request.get("args", {})
    except BadRequest as err:
        return str(err)
    except RecursionError:
        return "malformed request (nested too deeply)"
    except (ValueError, AttributeError):
        return "malformed request"


def _answer(conn: socket.socket, reply: dict[str, Any]) -> None:
    conn.sendall(json.dumps(reply).encode("utf-8") + b"\n")


# -- the client side (ie-cli as a non-root user) --------------------------------------
_ERRORS: dict[str, type[IeError]] = {v: k for k, v in _KINDS.items()}


def _send_request(sock: socket.socket, op: str, args: dict[str, Any]) -> None:
    """Send the request line.  The service answers a connection it refuses (too many at
    once) and closes it without reading the request: sending may then fail with a broken
    pipe while the refusal waits to be read, so that failure is left to the read."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(json.dumps({"op": op, "args": args}).encode("utf-8") + b"\n")


def _read_answer(sock: socket.socket) -> bytes:
    """What the service sends until it closes.  Closing a refused connection with the
    request unread shows here as a reset once the answer has been read: a complete
    answer line is then the answer."""
    data = bytearray()
    try:
        while chunk := sock.recv(1 << 16):
            data += chunk
    except ConnectionResetError:
        if b"\n" not in data:
            raise
    return bytes(data)


def stream(path: str, op: str, args: dict[str, Any], out: BinaryIO) -> None:
    """Ask the service at ``path`` for a streaming operation and copy the bytes to
    ``out`` as they arrive; raise the error it answers as an IeError, and an IeError when
    the stream ends before the size it announced."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CLIENT_TIMEOUT)
        try:
            sock.connect(path)
            _send_request(sock, op, args)
            reader = sock.makefile("rb")
            size = (_reply(path, reader.readline(MAX_REQUEST)).get("result") or {}).get("size")
            if not isinstance(size, int) or size < 0:
                raise IeError(f"the ie service at {path} gave no valid answer")
            received = 0
            while received < size and (chunk := reader.read1(min(CHUNK, size - received))):
                out.write(chunk)
                received += len(chunk)
        except OSError as err:
            raise IeError(f"cannot reach the ie service at {path}: "
                          f"{err.strerror or err} (is ie-filterd running?)") from None
    if received < size:
        raise IeError(f"the ie service at {path} sent {received} of {size} bytes; "
                      "the output is incomplete")


def _reply(path: str, line: bytes) -> dict[str, Any]:
    """The answer line as a dict when it says ok; the error it names raised otherwise."""
    try:
        reply = json.loads(line)
    except ValueError:
        raise IeError(f"the ie service at {path} gave no valid answer") from None
    if not isinstance(reply, dict):
        raise IeError(f"the ie service at {path} gave no valid answer")
    if reply.get("ok"):
        return reply
    raise _ERRORS.get(str(reply.get("kind")), IeError)(str(reply.get("error", "failed")))


def call(path: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """Ask the service at ``path``; raise the error it answers as an IeError."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CLIENT_TIMEOUT)
        try:
            sock.connect(path)
            _send_request(sock, op, args)
            data = _read_answer(sock)
        except OSError as err:
            raise IeError(f"cannot reach the ie service at {path}: "
                          f"{err.strerror or err} (is ie-filterd running?)") from None
    result: dict[str, Any] = _reply(path, data).get("result") or {}
    return result
