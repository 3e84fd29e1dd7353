"""Mail through ie-filterd reaches the reinjection sink with our headers, envelope intact."""

from __future__ import annotations

import smtplib

MSG = (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hello\r\n"
       b"X-IE-Filter-Action: forged\r\n\r\nHello Bob.\r\n.leading dot line\r\n")


def test_delivers_with_verdict_headers_and_exact_body(run_daemon, sink):
    d = run_daemon()
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
        refused = s.sendmail("alice@example.com", ["bob@example.org", "carol@example.net"], MSG)
    assert refused == {}
    [got] = sink.wait_for(1)
    assert got.mail_from == "alice@example.com"
    assert got.rcpt_tos == ["bob@example.org", "carol@example.net"]
    head, body = got.data.split(b"\r\n\r\n", 1)
    assert body == b"Hello Bob.\r\n.leading dot line\r\n"
    assert b"X-IE-Filter-Action: deliver" in head
    assert b"X-IE-Filter-Score: 0.00" in head
    assert b"forged" not in head
    # everything we did not touch is byte-identical, in order
    assert head.endswith(b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n"
                         b"Subject: hello")


def test_smtputf8_and_8bitmime_pass_through(run_daemon, sink):
    d = run_daemon()
    msg = "From: Jörg <jörg@bücher.example>\r\nSubject: Grüße\r\n\r\nÄpfel\r\n".encode()
    with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
        s.ehlo()
        assert s.has_extn("smtputf8") and s.has_extn("8bitmime")
        s.sendmail("jörg@bücher.example", ["empfänger@example.org"], msg,
                   mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    [got] = sink.wait_for(1)
    assert got.mail_from == "jörg@bücher.example"
    assert got.rcpt_tos == ["empfänger@example.org"]
    assert "SMTPUTF8" in got.mail_options and "BODY=8BITMIME" in got.mail_options
    assert got.data.endswith(msg)


def test_reinjection_connection_is_reused(run_daemon, sink):
    d = run_daemon()
    for i in range(3):
        with smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=10) as s:
            s.sendmail("a@example.com", [f"r{i}@example.org"], MSG)
    got = sink.wait_for(3)
    assert len(got) == 3
    assert len({m.peer for m in got}) == 1  # one downstream connection carried all three
