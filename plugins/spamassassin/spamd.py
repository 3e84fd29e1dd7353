"""The SpamAssassin classifier backend: the spamd protocol over TCP.

A request is one line ``VERB SPAMC/1.5``, headers, an empty line and the message; spamd
answers ``SPAMD/1.x <code> <text>``, headers, an empty line and a body, then closes.

- ``SYMBOLS``: the ``Spam: True ; 15.0 / 5.0`` header and the names of the rules that hit.
- ``TELL`` with ``Message-class: spam|ham`` and ``Set: local`` learns (spamd must run with
  ``--allow-tell``); ``Remove: local`` forgets.  spamd confirms with ``DidSet`` /
  ``DidRemove``; no such header means there was nothing to do (learned before).
- ``PING``: is it alive.

One ``timeout`` bounds the whole exchange (connect, send, reply), so a daemon that is down,
hung or slow raises :class:`ClassifierUnavailable` in at most that long.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ie_core.classifier import Classification, ClassifierUnavailable, Envelope
from ie_core.config import parse_hostport, show_hostport

log = logging.getLogger("ie.spamassassin")

PROTOCOL = "SPAMC/1.5"
MAX_REPLY = 1 << 20  # a SYMBOLS/TELL/PING reply is tiny; anything this big is nonsense
_STATUS = re.compile(rb"^SPAMD/\d+\.\d+ +(\d+) *(.*)$")
_SPAM = re.compile(r"^\s*(true|false|yes|no)\s*;\s*(-?[\d.]+)\s*/\s*(-?[\d.]+)\s*$",
                   re.IGNORECASE)


@dataclass(frozen=True)
class SpamdReply:
    code: int
    text: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class SpamAssassinClassifier:
    name = "spamassassin"

    def __init__(self, address: str, user: str = "", timeout: float = 30.0,
                 max_size: int = 512_000) -> None:
        self.address = parse_hostport(address, "spamassassin.address")
        self.user = user
        self.timeout = timeout
        self.max_size = max_size

    # -- the Classifier contract ------------------------------------------------------
    def classify(self, raw: bytes, envelope: Envelope | None = None) -> Classification:
        """Messages over ``max_size`` are not sent (like spamc): score 0, ``ham``, and
        ``extra["skipped"]`` says why.  The envelope is not used: the spamd protocol has no
        place for it (its ``User`` header picks whose preferences and Bayes database apply,
        which must stay ``spamassassin.user`` so scoring and learning use the same one)."""
        if len(raw) > self.max_size:
            return Classification(score=0.0, label="ham",
                                  detail=f"not scanned: over {self.max_size} bytes",
                                  extra={"skipped": "too large"})
        reply = self._call("SYMBOLS", raw)
        match = _SPAM.match(reply.headers.get("spam", ""))
        if not match:
            raise ClassifierUnavailable(f"spamd sent no readable Spam header: {reply.headers}")
        is_spam, score, threshold = match.groups()
        symbols = [s for s in reply.body.decode("ascii", "replace").strip().split(",") if s]
        return Classification(
            score=float(score),
            label="spam" if is_spam.lower() in ("true", "yes") else "ham",
            detail=" ".join(symbols),
            extra={"required_score": float(threshold), "symbols": symbols},
        )

    def learn(self, raw: bytes, spam: bool) -> None:
        if len(raw) > self.max_size:
            log.info("spamd TELL: message over %d bytes not learned", self.max_size)
            return
        reply = self._tell(raw, spam, {"Set": "local"})
        if "didset" not in reply.headers:
            log.info("spamd TELL: already learned as %s, nothing to do",
                     "spam" if spam else "ham")

    def forget(self, raw: bytes, spam: bool) -> None:
        if len(raw) > self.max_size:
            return  # never learned either
        reply = self._tell(raw, spam, {"Remove": "local"})
        if "didremove" not in reply.headers:
            log.info("spamd TELL: message was not learned, nothing to forget")

    def stats(self) -> Mapping[str, Any]:
        """spamd's protocol reports no Bayes counts; this says whether it answers PING."""
        reply = self._call("PING", None)
        return {"backend": self.name, "address": show_hostport(self.address), "alive": True,
                "reply": reply.text,
                "learned": "not reported by spamd; run sa-learn --dump magic on its host"}

    # -- ie-config status -------------------------------------------------------------
    def check(self, timeout: float) -> str:
        """``PING`` within ``timeout`` seconds (or the configured timeout, if shorter)."""
        self._call("PING", None, timeout=min(timeout, self.timeout))
        return show_hostport(self.address)

    # -- the protocol -----------------------------------------------------------------
    def _tell(self, raw: bytes, spam: bool, what: dict[str, str]) -> SpamdReply:
        return self._call("TELL", raw, {"Message-class": "spam" if spam else "ham", **what})

    def _call(self, verb: str, raw: bytes | None, headers: Mapping[str, str] | None = None,
              timeout: float | None = None) -> SpamdReply:
        lines = [f"{verb} {PROTOCOL}"]
        if raw is not None:
            lines.append(f"Content-length: {len(raw)}")
        if self.user:
            lines.append(f"User: {self.user}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (raw or b"")
        reply = parse_reply(self._exchange(request, timeout or self.timeout))
        if reply.code != 0:
            raise ClassifierUnavailable(f"spamd refused {verb}: {reply.code} {reply.text}")
        return reply

    def _exchange(self, request: bytes, timeout: float) -> bytes:
        host, port = self.address
        deadline = time.monotonic() + timeout
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                sock.settimeout(_remaining(deadline))
                sock.sendall(request)
                sock.shutdown(socket.SHUT_WR)
                chunks: list[bytes] = []
                size = 0
                while True:
                    sock.settimeout(_remaining(deadline))
                    chunk = sock.recv(65536)
                    if not chunk:
                        return b"".join(chunks)
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > MAX_REPLY:
                        raise ClassifierUnavailable(f"spamd at {host}:{port}: reply too large")
        except OSError as err:  # refused, reset, timed out
            raise ClassifierUnavailable(f"spamd at {host}:{port}: {err or type(err).__name__}"
                                        ) from err


def parse_reply(data: bytes) -> SpamdReply:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:  # a reply with no body need not end in an empty line
        head, body = data.rstrip(b"\r\n"), b""
    status, *header_lines = head.split(b"\r\n")
    match = _STATUS.match(status)
    if not match:
        raise ClassifierUnavailable(f"spamd sent no SPAMD status line: {data[:80]!r}")
    headers = {}
    for line in header_lines:
        name, colon, value = line.decode("latin-1").partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return SpamdReply(int(match.group(1)), match.group(2).decode("latin-1"), headers, body)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left
