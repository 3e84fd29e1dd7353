"""``MessageContext.head`` parses the header block only, and gives the headers the email
package finds in the whole message, hostile inputs included; ``rawheaders`` ends the
header block where the email package does."""

from __future__ import annotations

import email.parser
import email.policy
from datetime import UTC, datetime

import pytest

from ie_core import Direction, MessageContext, rawheaders


def context(raw: bytes) -> MessageContext:
    return MessageContext(direction=Direction.OUTGOING, raw=raw, mail_from="a@example.com",
                          rcpt_tos=["b@example.org"], received_at=datetime.now(UTC))


def whole_message_headers(raw: bytes) -> list[tuple[str, str]]:
    parser = email.parser.BytesParser(policy=email.policy.compat32)
    return parser.parsebytes(raw, headersonly=True).items()


def test_head_of_a_big_message_holds_the_headers_and_none_of_the_body():
    body = b"BODYLINE " * 8 + b"\r\n"
    raw = b"Subject: big\r\nFrom: a@example.com\r\n\r\n" + body * 200_000  # ~15 MB
    head = context(raw).head
    assert head.items() == [("Subject", "big"), ("From", "a@example.com")]
    assert "BODYLINE" not in str(head.get_payload())


HOSTILE = {
    "no blank line": b"Subject: s\r\nFrom: a@example.com\r\nX-Last: 1",
    "bare LF": b"Subject: s\nFrom: a@example.com\n\nX-Body: 1\n",
    "CRLF": b"Subject: s\r\nFrom: a@example.com\r\n\r\nX-Body: 1\r\n",
    "LF lines, CRLF blank line": b"Subject: s\nFrom: a@example.com\n\r\nX-Body: 1\n",
    "CRLF lines, LF blank line": b"Subject: s\r\nFrom: a@example.com\r\n\nX-Body: 1\r\n",
    "starts with a blank line": b"\r\nSubject: s\r\n\r\nX-Body: 1\r\n",
    "only a line end": b"\n",
    "empty": b"",
    "folded, then a non-header line": b"Subject: s\r\n\tfolded\r\nnot a header\r\nX-B: 1\r\n",
    "mbox From line": b"From a@example.com Mon Jan  1 00:00:00 2024\nSubject: s\n\nbody\n",
    "bare CR blank line": b"Subject: s\r\rX-Body: 1\n\nX-More: 2\n",
    "whitespace-only line": b"Subject: s\r\n \r\nX-Next: 1\r\n\r\nX-Body: 1\r\n",
    "8-bit and NUL": b"Subject: \xff\xfe\x00\r\nX\x00: 1\r\n\r\nX-Body: 1\r\n",
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
def test_head_gives_the_headers_of_the_whole_message(raw):
    assert context(raw).head.items() == whole_message_headers(raw)


def test_a_blank_line_of_either_ending_ends_the_header_block():
    for raw in (HOSTILE["LF lines, CRLF blank line"], HOSTILE["CRLF lines, LF blank line"]):
        out = rawheaders.remove(raw, lambda name: name.startswith("x-"))
        assert out == raw  # X-Body is in the body: untouched


def test_a_message_that_starts_with_a_blank_line_has_no_header_block():
    raw = HOSTILE["starts with a blank line"]
    assert rawheaders.split(raw) == (b"", raw)
    assert rawheaders.remove(raw, lambda name: True) == raw
