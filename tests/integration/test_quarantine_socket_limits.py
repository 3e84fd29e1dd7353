"""The quarantine's local socket cannot be held or bloated by one user (issue 13, hole 7):
a request has a total deadline and a size cap, one uid holds a few of the slots, deeply
nested JSON gets one line, and a held message's raw bytes are streamed in chunks."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from ie_core import IeError
from ie_plugins.quarantine import socket_api
from tests.integration.test_quarantine_daemon import MarkerPlugin, message, send
from tests.integration.test_quarantine_isolation import public_dir, unix_users  # noqa: F401


@pytest.fixture
def served(run_daemon, public_dir, monkeypatch):  # noqa: F811
    monkeypatch.setattr(socket_api, "REQUEST_DEADLINE", 1.5, raising=False)
    path = public_dir / "cli.sock"
    d = run_daemon(plugins=[("marker", MarkerPlugin())],
                   **{"quarantine.cli_socket": str(path), "pipeline.outgoing": ["marker"]})
    return d, str(path)


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    return sock


def answer(sock: socket.socket) -> dict:
    data = bytearray()
    while b"\n" not in data and (chunk := sock.recv(65536)):
        data += chunk
    return json.loads(bytes(data).split(b"\n", 1)[0])


def ask(path: str, line: bytes) -> dict:
    with connect(path) as sock:
        sock.sendall(line)
        return answer(sock)


PER_UID = 4  # socket_api.MAX_PER_UID
LIST = json.dumps({"op": "emails.list", "args": {}}).encode() + b"\n"


def test_a_trickling_client_is_cut_off_at_the_deadline_while_others_are_served(served):
    _, path = served
    slow = connect(path)
    slow.sendall(b'{"op"')
    started = time.monotonic()
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            try:
                slow.sendall(b" ")
            except OSError:
                return
            stop.wait(0.3)

    threading.Thread(target=trickle, daemon=True).start()
    assert ask(path, LIST)["ok"] is True  # served meanwhile
    reply = answer(slow)
    stop.set()
    slow.close()
    assert reply == {"ok": False, "kind": "invalid",
                     "error": "request not complete within 1.5 seconds"}
    assert time.monotonic() - started < 5


def test_an_oversized_request_gets_one_line(served):
    _, path = served
    reply = ask(path, b'{"op": "emails.list", "args": {"x": "' + b"a" * 100_000 + b'"}}\n')
    assert reply == {"ok": False, "kind": "invalid",
                     "error": "request larger than 65536 bytes"}
    assert ask(path, LIST)["ok"] is True


def test_deeply_nested_json_gets_one_line_and_the_service_goes_on(served):
    _, path = served
    reply = ask(path, b"[" * 60_000 + b"\n")
    assert reply == {"ok": False, "kind": "invalid",
                     "error": "malformed request (nested too deeply)"}
    assert ask(path, LIST)["ok"] is True


def test_one_uid_cannot_take_every_slot(served, unix_users, monkeypatch):  # noqa: F811
    _, path = served
    monkeypatch.setattr(socket_api, "REQUEST_DEADLINE", 60.0)  # the idle ones stay put
    held = [connect(path) for _ in range(PER_UID)]  # root, sending nothing
    try:
        time.sleep(0.2)
        with pytest.raises(IeError) as refused:  # what ie-cli's client reads
            socket_api.call(path, "emails.list", {})
        assert str(refused.value) == f"too many requests of yours at once (at most {PER_UID})"
        (_, uid, gid), _ = unix_users
        client = (f"import json, socket; s = socket.socket(socket.AF_UNIX); "
                  f"s.connect({path!r}); s.sendall({LIST!r}); "
                  f"print(s.makefile('rb').readline().decode())")
        done = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                               sys.executable, "-c", client], capture_output=True, text=True,
                              timeout=30)
        assert json.loads(done.stdout)["ok"] is True, done.stderr
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert ask(path, LIST)["ok"] is True  # the slots came back


class Counting(io.RawIOBase):
    def __init__(self) -> None:
        self.size = 0
        self.head = b""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        if len(self.head) < 200:
            self.head += bytes(data[:200])
        self.size += len(data)
        return len(data)


def test_a_large_held_message_is_streamed_not_read_whole(served):
    d, path = served
    raw = message(subject="big") + (b"y" * 998 + b"\r\n") * 30_000  # 30 MB
    held = send(d.outgoing_port, raw)
    out = Counting()
    tracemalloc.start()
    try:
        socket_api.stream(path, "emails.raw", {"id": held}, out)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.size == len(raw) and raw.startswith(out.head)
    assert peak < 4 * 2**20, f"peak {peak} bytes while streaming {len(raw)}"
    stored = Path(d.app.config.data_dir) / "quarantine" / held
    assert stored.read_bytes() == raw


def test_a_stream_cut_short_is_an_error_not_a_short_file(tmp_path):
    """A service that dies mid-message (fault injection: a fake that announces 100 bytes
    and sends 40) must not leave the user with a silently truncated message."""
    from ie_core import IeError

    path = str(tmp_path / "fake.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.makefile("rb").readline()
            conn.sendall(b'{"ok": true, "result": {"size": 100}}\n' + b"x" * 40)

    threading.Thread(target=serve, daemon=True).start()
    out = Counting()
    with pytest.raises(IeError, match="sent 40 of 100 bytes"):
        socket_api.stream(path, "emails.raw", {"id": "x"}, out)  # type: ignore[arg-type]
    server.close()
    assert out.size == 40
