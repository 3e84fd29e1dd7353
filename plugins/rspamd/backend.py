"""The rspamd classifier backend: ``/checkv2`` on the normal worker, learning on the controller.

Protocol (https://rspamd.com/doc/developers/protocol.html): the message is the body of an
HTTP ``POST``; what the MTA knows about the envelope travels in request headers (``From``,
``Rcpt``, ``IP``, ``Queue-Id``, ``User``).  The reply is JSON with ``score``, ``action``
and ``symbols``.  Learning goes to the controller (``/learnspam``, ``/learnham``), which
wants the ``Password`` header unless our address is in its ``secure_ip``.

rspamd cannot unlearn one message.  It remembers what it learned each message as, and
learning the same message as the other class *moves* it there; :meth:`forget` does that
(see docs/external-classifiers.md).
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Mapping
from typing import Any

from ie_core.classifier import Classification, ClassifierUnavailable, Envelope
from ie_core.config import parse_hostport, show_hostport

log = logging.getLogger("ie.rspamd")

SPAM_ACTIONS = frozenset({"reject", "add header", "rewrite subject"})
TOP_SYMBOLS = 8  # how many symbols go into Classification.detail
ALREADY_LEARNED = 208  # the controller's answer for a message learned before as this class


class RspamdClassifier:
    """Score and learn through a running rspamd.  ``timeout`` bounds connecting and each
    read of the reply; a daemon that is down, hung or answers nonsense raises
    :class:`ClassifierUnavailable`."""

    name = "rspamd"

    def __init__(self, address: str, controller: str, password: str = "",
                 timeout: float = 10.0) -> None:
        self.address = parse_hostport(address, "rspamd.address")
        self.controller = parse_hostport(controller, "rspamd.controller")
        self.password = password
        self.timeout = timeout

    # -- the Classifier contract ------------------------------------------------------
    def classify(self, raw: bytes, envelope: Envelope | None = None) -> Classification:
        """Score ``raw``; the envelope, when known, travels in the request headers."""
        headers = envelope_headers(envelope) if envelope is not None else []
        status, body = self._request(self.address, "POST", "/checkv2", raw, headers)
        if status != 200:
            raise ClassifierUnavailable(f"rspamd answered HTTP {status} to /checkv2")
        return to_classification(_json(body))

    def learn(self, raw: bytes, spam: bool) -> None:
        self._learn(raw, spam)

    def forget(self, raw: bytes, spam: bool) -> None:
        """rspamd keeps no way to unlearn one message: learn it as the other class, which
        moves it out of the class it was wrongly learned as."""
        self._learn(raw, not spam)

    def stats(self) -> Mapping[str, Any]:
        status, body = self._request(self.controller, "GET", "/stat", b"", self._auth())
        if status != 200:
            raise ClassifierUnavailable(f"rspamd controller answered HTTP {status} to /stat")
        stat = _json(body)
        if not isinstance(stat, dict):
            raise ClassifierUnavailable("rspamd sent a /stat reply we cannot read")
        return {
            "backend": self.name,
            "learned": stat.get("learned"),
            "scanned": stat.get("scanned"),
            "statfiles": [{k: f.get(k) for k in ("symbol", "revision", "users")}
                          for f in stat.get("statfiles", []) if isinstance(f, dict)],
        }

    # -- ie-config status -------------------------------------------------------------
    def check(self, timeout: float) -> str:
        """``GET /ping`` on the normal worker (the one that scores).  The controller is only
        needed for learning, so a controller that does not answer is mentioned, not raised."""
        timeout = min(timeout, self.timeout)
        status, body = self._request(self.address, "GET", "/ping", b"", [], timeout)
        if status != 200 or not body.startswith(b"pong"):
            raise ClassifierUnavailable(f"rspamd at {show_hostport(self.address)} answered HTTP "
                                        f"{status} to /ping")
        checked = show_hostport(self.address)
        try:
            self._request(self.controller, "GET", "/ping", b"", [], timeout)
        except ClassifierUnavailable as err:
            checked += f"; learning will fail, the controller does not answer ({err})"
        return checked

    # -- HTTP -------------------------------------------------------------------------
    def _learn(self, raw: bytes, spam: bool) -> None:
        path = "/learnspam" if spam else "/learnham"
        status, body = self._request(self.controller, "POST", path, raw, self._auth())
        if status == ALREADY_LEARNED:
            log.info("rspamd %s: already learned, nothing to do", path)
        elif status in (401, 403):
            raise ClassifierUnavailable("rspamd controller refused our password "
                                        "(rspamd.password)")
        elif not 200 <= status < 300:
            raise ClassifierUnavailable(f"rspamd answered HTTP {status} to {path}")
        elif status != 200:
            # 204: too few tokens to learn; rspamd says why in the JSON body
            log.info("rspamd %s: not learned (HTTP %d): %s", path, status, body[:200])

    def _auth(self) -> list[tuple[str, str]]:
        return [("Password", self.password)] if self.password else []

    def _request(self, where: tuple[str, int], method: str, path: str, body: bytes,
                 headers: list[tuple[str, str]],
                 timeout: float | None = None) -> tuple[int, bytes]:
        host, port = where
        conn = http.client.HTTPConnection(host, port, timeout=timeout or self.timeout)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, _header_safe(value))
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as err:
            raise ClassifierUnavailable(f"rspamd at {host}:{port}: {err or type(err).__name__}"
                                        ) from err
        finally:
            conn.close()


def envelope_headers(envelope: Envelope) -> list[tuple[str, str]]:
    """The envelope as rspamd's request headers (``From: <>`` for the null sender)."""
    headers = [("From", envelope.mail_from or "<>")]
    headers += [("Rcpt", rcpt) for rcpt in envelope.rcpt_tos]
    for name, value in (("IP", envelope.client_ip), ("Queue-Id", envelope.queue_id),
                        ("User", envelope.auth_user)):
        if value:
            headers.append((name, value))
    return headers


def to_classification(reply: Any) -> Classification:
    """Map a ``/checkv2`` JSON reply onto our scale (rspamd's points are ours)."""
    try:
        score = float(reply["score"])
        action = str(reply["action"])
        symbols = reply.get("symbols") or {}
        scored = {str(name): float(s.get("score", 0.0)) for name, s in symbols.items()}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ClassifierUnavailable(f"rspamd sent a reply we cannot read: {err!r}") from err
    top = sorted(scored.items(), key=lambda item: (-abs(item[1]), item[0]))[:TOP_SYMBOLS]
    return Classification(
        score=score,
        label="spam" if action in SPAM_ACTIONS else "ham",
        detail=" ".join(f"{name}({value:g})" for name, value in top),
        extra={"action": action, "required_score": reply.get("required_score"),
               "symbols": scored},
    )


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as err:
        raise ClassifierUnavailable(f"rspamd sent something that is not JSON: {body[:80]!r}"
                                    ) from err


def _header_safe(value: str) -> str:
    """Envelope values come from the SMTP session: never let them break the request."""
    return "".join(c for c in value if c.isprintable())
