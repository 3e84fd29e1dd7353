"""A client for clamd's INSTREAM protocol (a Unix socket or TCP).

Each call opens its own connection (clamd serves one command per connection unless a
session is asked for), sends ``zINSTREAM`` and the message in length-prefixed chunks, and
reads the NUL-terminated answer: ``stream: OK``, ``stream: NAME FOUND`` or
``... ERROR``.  Anything else (no daemon, a timeout, a short or strange answer) is a
:class:`ClamdUnavailable`: the caller decides what an unscanned message gets, never a
silent pass.
"""

from __future__ import annotations

import re
import socket
import struct
from dataclasses import dataclass

CHUNK = 65536
MAX_ANSWER = 4096
SIZE_LIMIT = "INSTREAM size limit exceeded"


class ClamdUnavailable(Exception):
    """clamd could not scan the message: not running, refused, too slow, or an error."""


class StreamTooLarge(Exception):
    """clamd refused the stream as longer than its ``StreamMaxLength``."""


@dataclass(frozen=True)
class Address:
    """Where clamd listens: ``unix:/path`` (or a bare absolute path), or ``HOST:PORT``."""

    path: str | None = None
    host: str | None = None
    port: int = 0

    @classmethod
    def parse(cls, text: str) -> Address:
        text = text.strip()
        if text.startswith("unix:"):
            text = text[5:]
        if text.startswith("/"):
            return cls(path=text)
        host, sep, port = text.rpartition(":")
        if not sep or not host or not re.fullmatch(r"[0-9]{1,5}", port) \
                or not 0 < int(port) < 65536:
            raise ValueError(f"clamd address must be unix:/PATH or HOST:PORT, not {text!r}")
        return cls(host=host.strip("[]"), port=int(port))

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.path else f"{self.host}:{self.port}"

    def connect(self, timeout: float) -> socket.socket:
        if self.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            return sock
        assert self.host is not None
        return socket.create_connection((self.host, self.port), timeout=timeout)


@dataclass(frozen=True)
class ScanResult:
    """``signature`` is the name clamd reported (``None``: clean)."""

    signature: str | None


def _command(address: Address, command: bytes, timeout: float,
             payload: bytes | None = None) -> str:
    try:
        with address.connect(timeout) as sock:
            try:
                sock.sendall(b"z" + command + b"\0")
                if payload is not None:
                    view = memoryview(payload)
                    for start in range(0, len(view), CHUNK):
                        part = view[start:start + CHUNK]
                        sock.sendall(struct.pack("!I", len(part)) + part)
                    sock.sendall(struct.pack("!I", 0))
            except (BrokenPipeError, ConnectionResetError):
                pass  # clamd stopped reading (a size limit): its answer says why
            return _answer(sock)
    except TimeoutError:
        raise ClamdUnavailable(f"clamd at {address} did not answer within "
                               f"{timeout:g} s") from None
    except OSError as err:
        raise ClamdUnavailable(f"clamd at {address}: {err.strerror or err}") from None


def _answer(sock: socket.socket) -> str:
    data = bytearray()
    while not data.endswith(b"\0"):
        chunk = sock.recv(MAX_ANSWER)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_ANSWER:
            raise ClamdUnavailable("clamd's answer is too long")
    return data.rstrip(b"\0").decode("ascii", "replace").strip()


def scan(address: Address, data: bytes, timeout: float) -> ScanResult:
    """Scan ``data``; :class:`StreamTooLarge` or :class:`ClamdUnavailable` when it was
    not scanned."""
    answer = _command(address, b"INSTREAM", timeout, data)
    if answer == "stream: OK":
        return ScanResult(None)
    if answer.startswith("stream: ") and answer.endswith(" FOUND"):
        return ScanResult(_printable(answer[len("stream: "):-len(" FOUND")]))
    if SIZE_LIMIT in answer:
        raise StreamTooLarge(answer)
    raise ClamdUnavailable(f"clamd at {address} answered {_printable(answer) or 'nothing'!r}")


def version(address: Address, timeout: float) -> str:
    """clamd's ``VERSION`` line (``ClamAV 1.4.6/27480/...``), after a ``PING``."""
    if _command(address, b"PING", timeout) != "PONG":
        raise ClamdUnavailable(f"clamd at {address} did not answer PING")
    return _printable(_command(address, b"VERSION", timeout))


def _printable(text: str) -> str:
    """At most 200 printable ASCII characters (it goes into logs, headers and replies)."""
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in text)[:200]
