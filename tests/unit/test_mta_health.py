"""The reinjection check of ``ie-config status`` against servers that are not a healthy
MTA (real sockets on loopback)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ie_core.app import create_app
from ie_plugins.mta import health


@pytest.fixture
def server() -> Iterator[tuple[socket.socket, list[bytes]]]:
    """A listening socket; each connection is sent the bytes put in the list (nothing:
    it stays silent) and then kept open until the test ends."""
    sock = socket.create_server(("127.0.0.1", 0))
    replies: list[bytes] = []
    conns: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conns.append(conn)
            if replies:
                conn.sendall(replies[0])

    threading.Thread(target=serve, daemon=True).start()
    yield sock, replies
    sock.close()
    for conn in conns:
        conn.close()


def items(tmp_path: Path, port: int) -> list[tuple[str, bool, str]]:
    app = create_app(None, overrides={"ie.data_dir": str(tmp_path),
                                      "filter.reinject": f"127.0.0.1:{port}",
                                      "quarantine.cli_socket": str(tmp_path / "cli.sock")})
    try:
        return [(i.name, i.ok, i.detail) for i in health.reinjection_items(app)]
    finally:
        app.close()


def test_a_greeting_that_is_not_220_fails(server, tmp_path: Path) -> None:
    sock, replies = server
    replies.append(b"554 5.3.2 not accepting mail\r\n")
    port = sock.getsockname()[1]
    assert items(tmp_path, port) == [("reinjection reinject", False, f"127.0.0.1:{port} "
                                      "answered '554 5.3.2 not accepting mail', not an SMTP "
                                      "greeting")]


def test_a_server_that_never_greets_fails_after_the_timeout(
        server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "TIMEOUT", 0.3)
    port = server[0].getsockname()[1]
    [(name, ok, detail)] = items(tmp_path, port)
    assert (name, ok) == ("reinjection reinject", False)
    assert detail.startswith(f"127.0.0.1:{port} not answering (timed out")


def test_a_multi_line_220_greeting_is_ok(server, tmp_path: Path) -> None:
    sock, replies = server
    replies.append(b"220-mx.example.test ESMTP\r\n220 ready\r\n")
    port = sock.getsockname()[1]
    assert items(tmp_path, port) == [
        ("reinjection reinject", True, f"127.0.0.1:{port} 220-mx.example.test ESMTP")]
