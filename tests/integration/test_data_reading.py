"""DATA as a real client sends it, read in bulk by the daemon: the end marker and
dot-stuffed lines cut across TCP segments, a command pipelined right after the marker,
bare LFs, an over-long line."""

from __future__ import annotations

import socket
import time

from ie_core import replies

BODY = (b"From: a@example.com\r\nSubject: dots\r\n\r\n"
        b"first\r\n..stuffed\r\n.\nbare LF after a dot\nnext\r\n...\r\nlast\r\n")
SENT = (b"From: a@example.com\r\nSubject: dots\r\n\r\n"  # the first dot of each line gone
        b"first\r\n.stuffed\r\n\nbare LF after a dot\nnext\r\n..\r\nlast\r\n")


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        assert self.reply().startswith(b"220")

    def reply(self) -> bytes:
        while True:
            line = self.file.readline()
            if line[3:4] != b"-":
                return line

    def envelope(self) -> None:
        for line in (b"EHLO client", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.org>",
                     b"DATA"):
            self.sock.sendall(line + b"\r\n")
            assert self.reply()[:1] in (b"2", b"3")

    def send_in_pieces(self, data: bytes, cuts: list[int]) -> None:
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            self.sock.sendall(data[a:b])
            time.sleep(0.02)  # separate segments, so the daemon's reads are cut here


def test_marker_and_stuffed_lines_cut_across_segments_then_a_pipelined_command(
        run_daemon, sink):
    d = run_daemon()
    client = Client(d.outgoing_port)
    stream = BODY + b".\r\nQUIT\r\n"
    marker = len(BODY) - 2
    cuts = [BODY.index(b"..stuffed") + 1, BODY.index(b"...") + 2, marker + 1, marker + 3]
    client.envelope()
    client.send_in_pieces(stream, cuts)
    assert client.reply().startswith(b"250")
    assert client.reply().startswith(b"221")  # QUIT came in the same segment as ".\r\n"
    [got] = sink.wait_for(1)
    assert got.data.endswith(SENT)


def test_an_empty_message_and_a_one_line_message(run_daemon, sink):
    d = run_daemon()
    client = Client(d.outgoing_port)
    for data in (b".\r\n", b"x\r\n.\r\n"):
        client.envelope()
        client.send_in_pieces(data, [1])
        assert client.reply().startswith(b"250")
    empty, one = sink.wait_for(2)
    assert one.data.endswith(b"\r\nx\r\n")
    assert not empty.data.endswith(b"x\r\n")


def test_a_line_over_the_limit_is_refused_after_the_dot_and_the_session_goes_on(
        run_daemon, sink):
    d = run_daemon()
    client = Client(d.outgoing_port)
    client.envelope()
    client.sock.sendall(b"Subject: long\r\n\r\n" + b"L" * (1 << 20) + b"x\r\nend\r\n.\r\n")
    assert client.reply().decode().strip() == str(replies.LINE_TOO_LONG)
    client.envelope()
    client.sock.sendall(BODY + b".\r\n")
    assert client.reply().startswith(b"250")
    [got] = sink.wait_for(1)
    assert got.data.endswith(SENT)
