"""A held message's HTML part for the "rendered" view.

Never put into the page live: the template hands it to an ``<iframe sandbox srcdoc>``
(no scripts, no forms, no same-origin access) under the page's Content-Security-Policy
(nothing loaded from elsewhere), and Jinja2 escapes it into the attribute.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from typing import BinaryIO

MAX_READ = 5 << 20
MAX_HTML = 500_000


def html_body(stream: BinaryIO) -> str | None:
    """The first text/html part that is not an attachment, decoded; ``None`` when there
    is none (the text view is shown instead).  Only the first :data:`MAX_READ` bytes
    of the message are read."""
    msg = message_from_bytes(stream.read(MAX_READ), policy=policy.compat32)
    for part in msg.walk():
        if part.is_multipart() or part.get_content_type() != "text/html":
            continue
        if part.get_filename():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, errors="replace")
        except LookupError:
            text = payload.decode("latin-1")
        return text[:MAX_HTML]
    return None
