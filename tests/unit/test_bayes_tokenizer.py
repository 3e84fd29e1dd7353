"""The built-in classifier's tokenizer and message digest on hostile and ordinary input."""

from __future__ import annotations

import base64

from ie_plugins.bayes.classifier import message_digest, token_hash
from ie_plugins.bayes.tokenizer import MAX_PARTS, tokenize

PLAIN = (b"From spammer@example.com  Tue Aug  6 10:58:00 2002\n"
         b"From: \"Cheap Meds\" <deals123@pharma.example>\nTo: bob@example.org\n"
         b"Subject: Lowest PRICES guaranteed!\nMessage-ID: <abc@mailer.example>\n"
         b"Content-Type: text/plain; charset=us-ascii\n\n"
         b"Visit http://www.pills.example/buy/now?id=1 today, friend.\n")


def test_headers_prefixed_words_urls_and_domains():
    tokens = tokenize(PLAIN)
    assert {"subject:lowest", "subject:prices", "from:addr:pharma.example",
            "from:name:cheap", "to:addr:example.org", "message-id:@mailer.example"} <= tokens
    assert {"url:pills.example", "url:www.pills.example", "url:path:buy", "proto:http"} <= tokens
    assert {"visit", "today", "friend"} <= tokens  # edge punctuation stripped
    assert not any(t.startswith("from ") or t == "tue" for t in tokens)  # mbox line skipped


def test_html_is_stripped_and_comments_do_not_split_words():
    raw = (b"From: a@b.example\nSubject: x\nContent-Type: text/html; charset=iso-8859-1\n\n"
           b"<html><body><style>.x{color:red}</style><p>V<!-- junk -->iagra &amp; "
           b"<a href='https://shop.example/p'>caf\xe9</a></p></body></html>\n")
    tokens = tokenize(raw)
    assert {"viagra", "url:shop.example", "café"} <= tokens
    assert not {"color", "body", "href"} & tokens


def test_markup_declarations_are_not_words():
    raw = (b"From: a@b.example\nSubject: x\nContent-Type: text/html\n\n"
           b'<?xml version="1.0"?><!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.0 Transitional//EN">'
           b"<html><body>Breaking news</body></html>\n")
    tokens = tokenize(raw)
    assert {"breaking", "news"} <= tokens
    assert not {"doctype", "public", "-//w3c//dtd", "4.0", "version=\"1.0\""} & tokens


def test_an_empty_recipient_list_is_one_fact_not_two():
    raw = b"From: a@b.example\nTo: undisclosed-recipients:;\nSubject: x\n\nbody text\n"
    tokens = tokenize(raw)
    assert "to:count:0" in tokens
    assert "to:none" not in tokens
    assert "reply-to:none" not in tokens  # only headers present are described
    assert "from:none" in tokenize(b"From: nobody\nSubject: x\n\nbody\n")


def test_broken_base64_unknown_charset_and_attachment_types():
    good = base64.b64encode("Grüße aus Köln, mein Freund".encode()).decode()
    raw = ("From: a@b.example\nSubject: =?DEFAULT_CHARSET?Q?bad?=\n"
           "Content-Type: multipart/mixed; boundary=XX\n\n--XX\n"
           "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
           f"{good[:-3]}!!*\n--XX\nContent-Type: text/plain; charset=DEFAULT\n\n"
           "plain words here\n--XX\nContent-Type: application/pdf; name=\"invoice.PDF\"\n"
           "Content-Disposition: attachment; filename=\"invoice.PDF\"\n"
           "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n").encode()
    tokens = tokenize(raw)
    assert {"grüße", "köln", "mein"} <= tokens
    assert {"plain", "words", "here", "charset:unknown"} <= tokens
    assert {"attachment:type:application/pdf", "attachment:ext:pdf"} <= tokens


def test_many_parts_are_bounded_and_garbage_does_not_raise():
    parts = "".join(f"--B\nContent-Type: text/plain\n\nword{i}\n" for i in range(1000))
    raw = f"From: a@b.example\nContent-Type: multipart/mixed; boundary=B\n\n{parts}--B--\n"
    tokens = tokenize(raw.encode())
    assert "parts:toomany" in tokens
    assert f"word{MAX_PARTS + 5}" not in tokens
    assert isinstance(tokenize(b"\xff\xfe\x00garbage\r\n\r\n\x80\x81"), set)
    assert isinstance(tokenize(b""), set)


def test_digest_ignores_transport_headers_but_not_content():
    moved = b"Received: from relay\nX-IE-Filter-Score: 3.00\n" + PLAIN.split(b"\n", 1)[1]
    assert message_digest(PLAIN) == message_digest(moved)
    assert message_digest(PLAIN) == message_digest(PLAIN.replace(b"\n", b"\r\n"))
    assert message_digest(PLAIN) != message_digest(PLAIN.replace(b"today", b"tomorrow"))


def test_token_hash_is_stable_signed_64_bit():
    assert token_hash("viagra") == token_hash("viagra")
    assert token_hash("viagra") != token_hash("viagra2")
    assert -(2 ** 63) <= token_hash("x") < 2 ** 63
