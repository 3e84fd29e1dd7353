"""What ``emails list/show`` print: the JSON items and the readable body."""

from __future__ import annotations

from email.message import Message
from html.parser import HTMLParser
from typing import Any

from ie_core import Direction, MessageContext
from ie_core.message import decode_header_value

from .models import HeldMessage

MAX_BODY_CHARS = 200_000


def item(row: HeldMessage) -> dict[str, Any]:
    """One ``emails list`` item (field names as in the Imunify Email CLI)."""
    return {
        "email_id": row.id,
        "size_bytes": row.size,
        "account_name": row.account,
        "direction": row.direction,
        "recipients": list(row.rcpt_tos),
        "subject": row.subject,
        "sender": row.mail_from,
        "received_date": row.received_at.isoformat(),
        "reasons": list(row.reasons),
        "score": row.score,
        "script_header": {"raw": row.script_raw or "", "domain": row.script_domain or "",
                          "path": row.script_path or ""},  # "" as Imunify gives them
    }


def details(row: HeldMessage, raw: bytes) -> dict[str, Any]:
    """``emails show``: the list item plus From, state, headers and the readable body."""
    ctx = MessageContext(direction=Direction.OUTGOING, raw=raw, mail_from=row.mail_from,
                         rcpt_tos=list(row.rcpt_tos), received_at=row.received_at)
    return {
        **item(row),
        "from": row.header_from,
        "quarantined_date": row.quarantined_at.isoformat(),
        "state": row.state,
        "headers": headers(ctx),
        "body": body_text(ctx.message),
    }


def headers(ctx: MessageContext) -> list[dict[str, str]]:
    """Every header in order, decoded (RFC 2047) without ever raising; one pass, so a
    message with thousands of headers costs thousands of decodes, not millions."""
    return [{"name": name, "value": decode_header_value(value)}
            for name, value in ctx.message.items()]


def body_text(msg: Message) -> str:
    """The first text/plain part, else the first text/html part with tags removed;
    undecodable bytes become U+FFFD."""
    parts = [p for p in msg.walk() if not p.is_multipart()]
    for wanted in ("text/plain", "text/html"):
        for part in parts:
            if part.get_content_type() != wanted or part.get_filename():
                continue
            text = _decode(part)
            text = text.replace("\r\n", "\n")
            if wanted == "text/html":
                text = strip_html(text)
            return text[:MAX_BODY_CHARS]
    return ""


def _decode(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("latin-1")


class _TextOnly(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title"})
    _BREAK = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAK:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.out.append(data)


def strip_html(html: str) -> str:
    parser = _TextOnly()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.out).splitlines())
    return "\n".join(line for line in lines if line)
