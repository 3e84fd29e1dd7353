"""Turning a raw message into the set of tokens the Bayesian filter counts.

In the tradition of SpamBayes and bogofilter: words of the decoded text and of
HTML-stripped bodies, selected headers (each token prefixed by the header's name),
URLs and their domains, attachment types and a few structural clues.  Everything is
decoded leniently: unknown charsets fall back to Latin-1, bad base64 is taken as far as
it decodes, and a leading mbox ``From `` line is skipped.  Nothing here raises on
hostile input, and the work is bounded (:data:`MAX_TEXT` characters per part,
:data:`MAX_PARTS` parts).

A message yields a *set*: each token counts once per message.
"""

from __future__ import annotations

import binascii
import email.parser
import email.policy
import html
import re
from collections.abc import Iterator
from email.message import Message

from ie_core.message import decode_header_value

MAX_PARTS = 200
MAX_TEXT = 200_000  # characters of each text part that are tokenized
MIN_WORD, MAX_WORD = 3, 12

# Headers whose words are tokens, each prefixed by the header name.
WORD_HEADERS = ("subject",)
# Headers whose addresses and display names are tokens.
ADDRESS_HEADERS = ("from", "reply-to", "return-path", "to", "cc", "sender", "errors-to")
# Headers whose whole (shortened) value is one token: the mailer and the like.
VALUE_HEADERS = ("x-mailer", "user-agent", "x-mailer-version", "x-priority", "x-msmail-priority",
                 "content-transfer-encoding", "mime-version", "precedence", "importance",
                 "x-mimeole", "list-id", "organization")
# Headers never looked at: ours, and verdicts of other filters (forgeable, and the
# incoming pipeline removes them anyway).
IGNORED_PREFIXES = ("x-ie-", "x-spam", "x-bogosity")

MBOX_FROM = re.compile(rb"\AFrom [^\r\n]*\r?\n")
_URL = re.compile(r"(?i)\b(?:(https?|ftp)://|www\.)([^\s<>\"'()\[\]{}]+)")
_ADDRESS = re.compile(r"[\w.+=-]+@[\w-]+(?:\.[\w-]+)+")
_SCRIPT_STYLE = re.compile(r"(?is)<(script|style)\b.*?</\1\s*>")
_COMMENT = re.compile(r"(?s)<!--.*?-->")
_DECLARATION = re.compile(r"<[!?][^>]*>")  # <!DOCTYPE ...>, <?xml ...?>: markup, not words
_TAG = re.compile(r"(?s)</?[a-zA-Z][a-zA-Z0-9]*\b[^>]*>")
_HEADER_WORD = re.compile(r"[\w$!'%-]+")
_IP = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_RECEIVED_HOST = re.compile(r"(?i)\b(?:from|by)\s+([a-z0-9][a-z0-9.-]*\.[a-z]{2,})")
_EDGE_PUNCT = "\"'()[]{}<>,;:.!?"  # stripped from both ends of a word


def tokenize(raw: bytes) -> set[str]:
    """All tokens of one message (a set: each counts once)."""
    raw = MBOX_FROM.sub(b"", raw, count=1)
    try:
        msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    except Exception:  # the compat32 parser is lenient; this is a last resort
        return set(_words(raw.decode("latin-1")))
    tokens: set[str] = set()
    tokens.update(_header_tokens(msg))
    tokens.update(_body_tokens(msg))
    return tokens


# -- headers ----------------------------------------------------------------------------
def _header_tokens(msg: Message) -> Iterator[str]:
    for name, value in msg.items():
        lname = name.strip().lower()
        if lname.startswith(IGNORED_PREFIXES):
            continue
        text = _header_text(value)
        if lname in WORD_HEADERS:
            yield from _subject_tokens(lname, text)
        elif lname in ADDRESS_HEADERS:
            yield from _address_tokens(lname, text)
        elif lname in VALUE_HEADERS:
            yield f"{lname}:{' '.join(text.lower().split())[:40]}"
        elif lname == "received":
            yield from (f"received:{h}" for h in _received_hosts(text))
        elif lname == "message-id":
            yield from _message_id_tokens(text)
        elif lname == "content-type":
            yield from _content_type_tokens(lname, msg)
        elif lname == "date":
            yield from _date_tokens(text)
    yield f"headers:count:{_bucket(len(msg))}"


def _header_text(value: object) -> str:
    try:
        return decode_header_value(value)
    except Exception:
        return str(value)


def _subject_tokens(prefix: str, text: str) -> Iterator[str]:
    for word in _HEADER_WORD.findall(text):
        low = word.lower()
        if len(low) >= 2:
            yield f"{prefix}:{low[:20]}"
    if text and text.upper() == text and any(c.isalpha() for c in text):
        yield f"{prefix}:ALLCAPS"
    if not text.strip():
        yield f"{prefix}:empty"
    for mark in ("!", "$", "%"):
        if mark in text:
            yield f"{prefix}:has{mark}"


def _address_tokens(prefix: str, text: str) -> Iterator[str]:
    addresses = _ADDRESS.findall(text)
    for addr in addresses:
        local, _, domain = addr.lower().rpartition("@")
        yield f"{prefix}:addr:{domain}"
        yield f"{prefix}:local:{_shape(local)}"
    counted = prefix in ("to", "cc")
    if counted:  # "count:0" already says there is no address
        yield f"{prefix}:count:{_bucket(len(addresses))}"
    name = _ADDRESS.sub(" ", text)
    for word in _HEADER_WORD.findall(name):
        if len(word) >= 2:
            yield f"{prefix}:name:{word.lower()[:20]}"
    if not addresses and not counted:
        yield f"{prefix}:none"


def _shape(local: str) -> str:
    """A coarse shape of a mailbox name (digits, length) rather than the name itself."""
    digits = sum(c.isdigit() for c in local)
    return f"len{_bucket(len(local))}:d{_bucket(digits)}"


def _received_hosts(text: str) -> Iterator[str]:
    for host in _RECEIVED_HOST.findall(text):
        parts = host.lower().strip(".").split(".")
        if len(parts) >= 2:
            yield ".".join(parts[-2:])


def _message_id_tokens(text: str) -> Iterator[str]:
    _, at, domain = text.strip().strip("<>").rpartition("@")
    if not at:
        yield "message-id:noat"
        return
    domain = domain.lower().strip(">")
    yield "message-id:@ip" if _IP.match(domain) else f"message-id:@{domain[:60]}"


def _content_type_tokens(prefix: str, msg: Message) -> Iterator[str]:
    yield f"{prefix}:{msg.get_content_type()}"
    boundary = msg.get_param("boundary")
    if isinstance(boundary, str):
        yield f"{prefix}:boundary:{_shape(boundary)}"


def _date_tokens(text: str) -> Iterator[str]:
    zone = text.strip().rsplit(" ", 1)[-1] if text.strip() else ""
    if zone[:1] in "+-" and zone[1:].isdigit():
        yield f"date:zone:{zone}"
    elif not zone:
        yield "date:empty"


def _bucket(n: int) -> int:
    """Small numbers as they are; larger ones rounded down to a power of two."""
    if n < 4:
        return n
    return 1 << (n.bit_length() - 1)


# -- bodies -----------------------------------------------------------------------------
def _body_tokens(msg: Message) -> Iterator[str]:
    for index, part in enumerate(msg.walk()):
        if index >= MAX_PARTS:
            yield "parts:toomany"
            return
        ctype = part.get_content_type()
        if part.is_multipart():
            continue
        filename = _filename(part)
        if filename is not None or part.get("content-disposition", "").lower().startswith(
                "attachment"):
            yield from _attachment_tokens(ctype, filename)
        if part.get_content_maintype() != "text" or filename is not None:
            continue
        text, clues = _decode_text(part)
        yield from clues
        if ctype == "text/html" or _looks_html(text):
            yield from _html_tokens(text)
        else:
            yield from _text_tokens(text)


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return "?"
    return None if name is None else decode_header_value(name)


def _attachment_tokens(ctype: str, filename: str | None) -> Iterator[str]:
    yield f"attachment:type:{ctype}"
    if filename:
        _, dot, ext = filename.lower().rpartition(".")
        yield f"attachment:ext:{ext[:10]}" if dot else "attachment:ext:none"


def _decode_text(part: Message) -> tuple[str, list[str]]:
    """The part's text, whatever its charset and transfer encoding claim."""
    clues: list[str] = []
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    payload = part.get_payload()
    if not isinstance(payload, str):
        return "", clues
    if cte == "base64":
        data = _lenient_base64(payload)
        clues.append("cte:base64-text")
    else:
        try:
            decoded = part.get_payload(decode=True)
        except Exception:
            decoded = None
        data = decoded if isinstance(decoded, bytes) else payload.encode("latin-1", "replace")
    charset = (part.get_content_charset() or "us-ascii").lower()
    try:
        text = data.decode(charset, errors="replace")
    except (LookupError, UnicodeError):
        clues.append("charset:unknown")
        text = data.decode("latin-1")
    clues.append(f"charset:{charset[:20]}")
    if "\ufffd" in text:
        clues.append("charset:undecodable")
    return text[:MAX_TEXT], clues


def _lenient_base64(payload: str) -> bytes:
    """Decode as much base64 as there is; stray characters and bad padding are skipped."""
    cleaned = re.sub(r"[^A-Za-z0-9+/]", "", payload)
    cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
    try:
        return binascii.a2b_base64(cleaned)
    except (binascii.Error, ValueError):
        return b""


def _looks_html(text: str) -> bool:
    head = text[:2000].lower()
    return "<html" in head or "<body" in head or "<table" in head


def _html_tokens(text: str) -> Iterator[str]:
    yield from _url_tokens(text)
    text = _SCRIPT_STYLE.sub(" ", text)
    text = _COMMENT.sub("", text)  # "V<!-- x -->iagra" is one word
    text = _DECLARATION.sub(" ", text)
    text = _TAG.sub(" ", text)
    yield from _text_tokens(html.unescape(text), urls=False)


def _text_tokens(text: str, urls: bool = True) -> Iterator[str]:
    if urls:
        yield from _url_tokens(text)
        text = _URL.sub(" ", text)
    yield from _words(text)


def _url_tokens(text: str) -> Iterator[str]:
    for proto, rest in _URL.findall(text):
        yield f"proto:{(proto or 'www').lower()}"
        host, _, path = rest.partition("/")
        host = host.lower().rsplit("@", 1)[-1].split(":", 1)[0].strip(".")
        if _IP.match(host):
            yield "url:ip"
        else:
            parts = host.split(".")
            for i in range(max(0, len(parts) - 3), len(parts) - 1):
                yield "url:" + ".".join(parts[i:])
        for piece in re.split(r"[/?&=.#_%-]+", path.lower())[:8]:
            if MIN_WORD <= len(piece) <= MAX_WORD:
                yield f"url:path:{piece}"
        if "%" in rest:
            yield "url:escaped"


def _words(text: str) -> Iterator[str]:
    for word in text.split():
        word = word.strip(_EDGE_PUNCT)
        n = len(word)
        if n < MIN_WORD:
            continue
        if "@" in word and _ADDRESS.fullmatch(word.strip(".")):
            local, _, domain = word.lower().strip(".").rpartition("@")
            yield f"email:domain:{domain}"
            yield f"email:local:{local[:20]}"
            continue
        low = word.lower()
        if n <= MAX_WORD:
            yield low
        else:
            yield f"skip:{low[0]} {n // 10 * 10}"

