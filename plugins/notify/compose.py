"""Turning a template context into the bytes of one notification.

Everything that came from a sender (subject, display names, addresses) is treated as
hostile: control characters are replaced before it reaches a template, the HTML part
autoescapes it, and headers are built by :class:`email.message.EmailMessage` under the
``SMTP`` policy, which refuses CR or LF in a header value.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from ie_plugins.notify.rendering import Templates

POLICY = SMTP
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_ADDRESS = re.compile(r"^[^@\s<>\"'(),;:\\\[\]]+@[A-Za-z0-9.-]+$")
SUBJECT_MAX = 200


def clean(value: object, limit: int = 1000) -> str:
    """One line of printable text: control characters (CR, LF, TAB...) become spaces."""
    text = _CONTROL.sub(" ", str(value if value is not None else ""))
    return text[:limit]


def clean_list(values: object, limit: int = 50) -> list[str]:
    if not isinstance(values, list | tuple):
        return [clean(values)] if values else []
    return [clean(v, 320) for v in list(values)[:limit]]


def valid_address(address: str | None) -> bool:
    return bool(address) and bool(_ADDRESS.match(address or ""))


def message_id(key: str, hostname: str) -> str:
    """The same key always gives the same Message-ID (a resend is recognisable)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}.notify@{clean(hostname, 200).replace(' ', '')}>"


def show_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def held_view(held_id: str, account: str, held_at: datetime | None, sender: str,
              recipients: Iterable[str], subject: str, reasons: Iterable[str],
              size: int, *, direction: str = "outgoing",
              score: float = 0.0) -> dict[str, Any]:
    """What templates get for one held message, including the commands to act on it."""
    safe_id = clean(held_id, 64)
    return {
        "direction": "incoming" if direction == "incoming" else "outgoing",
        "score": round(float(score or 0.0), 2),
        "id": safe_id,
        "account": clean(account, 64),
        "date": show_time(held_at) if held_at else "",
        "sender": clean(sender, 320),
        "recipients": clean_list(list(recipients)),
        "subject": clean(subject, 500),
        "reasons": clean_list(list(reasons)),
        "size": int(size or 0),
        "release_command": f"ie-cli emails release --ids {shlex.quote(safe_id)}",
        "remove_command": f"ie-cli emails remove --ids {shlex.quote(safe_id)}",
    }


def build(templates: Templates, kind: str, context: dict[str, Any], *, sender: str,
          recipient: str, msgid: str, when: datetime) -> bytes:
    """Render the three parts of ``kind`` and assemble a text + HTML message."""
    subject = " ".join(templates.render(kind, "subject", context).split())[:SUBJECT_MAX]
    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = recipient
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = msgid
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-IE-Notification"] = kind
    msg.set_content(templates.render(kind, "txt", context))
    msg.add_alternative(templates.render(kind, "html", context), subtype="html")
    return msg.as_bytes(policy=POLICY)
