"""Hostile input: the daemon answers each message correctly and keeps serving."""

from __future__ import annotations

import smtplib

import pytest

NORMAL = b"From: a@example.com\r\nSubject: fine\r\n\r\nfine\r\n"

CASES = {
    "malformed_mime": (b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
                       b"Content-Type: multipart/mixed; boundary=\"zzz\r\n\r\n--zzz\r\n"
                       b"Content-Type: text/plain; charset=\"x-unknown-9\"\r\n"
                       b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64===\r\n"),
    "raw_8bit_header": b"From: =?bogus?Q?x?= \xff\xfe\xe9t\xe9 <a@example.com>\r\n"
                       b"Subject: caf\xe9 \xc3\x28\r\n\r\nbody\r\n",
    "zero_byte_body": b"",
    "header_line_100k": b"From: a@example.com\r\nX-Long: " + b"A" * 100_000 + b"\r\n\r\nbody\r\n",
    "nul_bytes": b"From: a@example.com\r\nSubject: nul\x00here\r\n\r\nbo\x00dy\x00\r\n",
    "no_header_separator": b"just a line without any header\r\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_message_is_delivered_unchanged_and_daemon_keeps_serving(run_daemon, sink, name):
    d = run_daemon()
    raw = CASES[name]
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=30) as s:
        assert s.sendmail("a@example.com", ["b@example.org"], raw) == {}
        assert s.sendmail("a@example.com", ["c@example.org"], NORMAL) == {}
    got = sink.wait_for(2)
    assert len(got) == 2
    delivered = got[0].data
    # our headers on top, the rest exactly what was sent (forged ie headers aside)
    assert delivered.endswith(raw)
    assert b"X-IE-Filter-Action: deliver" in delivered


def test_message_just_over_the_size_limit_gets_552_534(run_daemon, sink):
    limit = 10_000
    d = run_daemon(**{"filter.max_message_size": limit})
    big = b"From: a@example.com\r\n\r\n" + b"x" * 78 + b"\r\n"
    body = big * (limit // len(big) + 1)
    assert limit < len(body) < limit + 100
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=30) as s:
        s.ehlo()
        assert s.mail("a@example.com")[0] == 250  # no SIZE: found out while reading DATA
        assert s.rcpt("b@example.org")[0] == 250
        code, text = s.data(body)
        assert code == 552 and text.startswith(b"5.3.4")
        assert s.sendmail("a@example.com", ["b@example.org"], NORMAL) == {}
    assert len(sink.wait_for(1)) == 1


def test_declared_size_over_the_limit_is_refused_at_mail_from(run_daemon):
    d = run_daemon(**{"filter.max_message_size": 1000})
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=30) as s:
        s.ehlo()
        code, text = s.mail("a@example.com", ["SIZE=5000"])
    assert code == 552 and text.startswith(b"5.3.4")
