"""The copy that leaves is built by rewriting the header block only: byte for byte what
rewriting the whole message gives, for every shape of message, and the body is a view of
the received bytes, not a copy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ie_core import rawheaders
from ie_core.message import MessageContext
from ie_core.processor import delivery_parts, is_forgeable
from ie_core.verdict import Action, Direction, Verdict

SHAPES = {
    "crlf": b"From: a@example.com\r\nX-IE-Filter-Score: -100\r\nSubject: hi\r\n\r\nbody\r\n",
    "lf": b"From: a@example.com\nX-Spam-Flag: YES\nSubject: hi\n\nbody\n.\nmore\n",
    "no blank line": b"From: a@example.com\r\nSubject: only headers\r\n",
    "no headers": b"\r\nbody without headers\r\n",
    "folded": b"Subject: one\r\n two\r\nX-IE-Filter-Action: deliver\r\n\tfolded\r\n\r\nb\r\n",
    "blank then CRLF body": b"A: 1\n\r\nbody\r\n",
    "empty": b"",
}


def reference(ctx: MessageContext, verdict: Verdict) -> bytes:
    """The former whole-message rewrite."""
    clean = ctx.header_changes.apply(
        rawheaders.remove(ctx.raw, lambda n: is_forgeable(ctx.direction, n)))
    return rawheaders.prepend(clean, [("X-IE-Filter-Id", ctx.id),
                                      ("X-IE-Filter-Score", f"{verdict.score:.2f}"),
                                      ("X-IE-Filter-Action", verdict.action.value)])


@pytest.mark.parametrize("direction", [Direction.OUTGOING, Direction.INCOMING])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_rewriting_the_header_block_equals_rewriting_the_message(shape, direction):
    ctx = MessageContext(direction, SHAPES[shape], "a@example.com", ["b@example.org"],
                         datetime.now(UTC))
    ctx.add_header("X-Added", "yes")
    ctx.prefix_header("Subject", "[SPAM]")
    ctx.remove_header("x-remove-me")
    verdict = Verdict(Action.DELIVER, score=1.5)
    head, body = delivery_parts(ctx, verdict)
    assert head + bytes(body) == reference(ctx, verdict)


def test_the_body_is_a_view_of_the_received_bytes():
    raw = b"Subject: big\r\n\r\n" + b"x" * 1_000_000
    ctx = MessageContext(Direction.OUTGOING, raw, "a@example.com", ["b@example.org"],
                         datetime.now(UTC))
    head, body = delivery_parts(ctx, Verdict(Action.DELIVER))
    assert isinstance(body, memoryview) and body.obj is raw
    assert len(head) < 300
