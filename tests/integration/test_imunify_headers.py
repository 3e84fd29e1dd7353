"""Imunify Email's filter headers, for Sieve rules written for it: written only when
``imunify.headers`` is on, and never taken from the sender."""

from __future__ import annotations

import smtplib

import pytest

FORGED = (b"X-ImunifyEmail-Filter-Action: reject\r\nX-ImunifyEmail-Filter-Score: -99\r\n"
          b"Subject: hi\r\n\r\nbody\r\n")


def header_lines(raw: bytes, prefix: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [line for line in head.split(b"\r\n") if line.lower().startswith(prefix.lower())]


@pytest.mark.parametrize("on", [True, False])
def test_imunify_headers_only_when_asked_and_never_forged(run_daemon, sink, on):
    d = run_daemon(**{"imunify.headers": on, "pipeline.outgoing": ["imunify-headers"]})
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
        s.sendmail("bob@example.com", ["r@example.org"], FORGED)
    [got] = sink.wait_for(1)
    found = header_lines(got.data, b"X-ImunifyEmail-Filter-")
    if on:
        assert found == [b"X-ImunifyEmail-Filter-Action: no action",
                         b"X-ImunifyEmail-Filter-Score: 0.00"]
    else:
        assert found == [b"X-ImunifyEmail-Filter-Action: reject",
                         b"X-ImunifyEmail-Filter-Score: -99"]  # not ours: left alone
