"""Every form carries the session's CSRF token; a POST without it is refused here,
before any view runs (so no view can forget the check).

The middleware sits inside the session middleware.  It gives each session a random
token, reads a POST's body (URL-encoded forms only, at most :data:`MAX_BODY` bytes),
checks the ``csrf`` field and leaves the parsed form in the scope for
:func:`~ie_plugins.web.pages.form`.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qsl

from starlette.datastructures import FormData, Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 1 << 20
FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def new_token() -> str:
    return secrets.token_urlsafe(32)


class CsrfMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = scope["session"]
        if not isinstance(session.get(FIELD), str):
            session[FIELD] = new_token()
        if scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        refusal, body = await self._read(scope, receive)
        if refusal is None:
            fields = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            given = next((v for k, v in fields if k == FIELD), "")
            if not hmac.compare_digest(given.encode(), session[FIELD].encode()):
                refusal = PlainTextResponse(
                    "403 Forbidden: this form has no valid security token (it is stale or "
                    "was not sent by this site); reload the page and try again.", 403)
            else:
                scope["ie.form"] = FormData([(k, v) for k, v in fields if k != FIELD])
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _read(scope: Scope, receive: Receive) -> tuple[PlainTextResponse | None, bytes]:
        ctype = Headers(scope=scope).get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return PlainTextResponse("415 Unsupported Media Type: forms only", 415), b""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return PlainTextResponse("400 Bad Request", 400), b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return PlainTextResponse("413 Content Too Large", 413), b""
            chunks.append(chunk)
            if not message.get("more_body", False):
                return None, b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the client's own messages (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
