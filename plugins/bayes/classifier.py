"""The built-in classifier backend (``builtin``): tokenizer + token store + statistics."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ie_core import App
from ie_core.classifier import Classification, ClassifierUnavailable, Envelope
from ie_plugins.bayes.probabilities import Probabilities
from ie_plugins.bayes.scoring import combine, strongest, to_points, token_probability
from ie_plugins.bayes.store import Sample, TokenStore, Totals, TrainResult
from ie_plugins.bayes.tokenizer import MBOX_FROM, tokenize

NAME = "builtin"
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)")


@dataclass(frozen=True)
class Limits:
    min_ham: int
    min_spam: int
    ham_cutoff: float
    spam_cutoff: float


@lru_cache(maxsize=1 << 16)
def token_hash(token: str) -> int:
    """A signed 64-bit hash of a token (the key in ``bayes_tokens``); the most recent
    tokens' hashes are remembered, since most of a message's tokens were in earlier ones."""
    digest = hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def message_digest(raw: bytes) -> str:
    """Identifies a message across deliveries: its Message-ID and its body, so headers
    added on the way (Received, ours, an mbox ``From `` line) do not make it new."""
    raw = MBOX_FROM.sub(b"", raw, count=1)
    parts = _HEADER_END.split(raw, maxsplit=1)
    head, body = parts[0], parts[1] if len(parts) > 1 else b""
    found = _MESSAGE_ID.search(head)
    message_id = b" ".join(found.group(1).split()) if found else b""
    body = b"\n".join(line.rstrip() for line in body.splitlines()).strip()
    h = hashlib.sha256()
    h.update(message_id)
    h.update(b"\0")
    h.update(body if (message_id or body) else raw)
    return h.hexdigest()


class BuiltinClassifier:
    """Implements :class:`ie_core.classifier.Classifier`; one per App (it caches)."""

    name = NAME

    def __init__(self, app: App, limits: Limits) -> None:
        self._app = app
        self.limits = limits
        self._store = TokenStore(app.db, app.changes)
        self._probabilities = Probabilities()

    def classify(self, raw: bytes, envelope: Envelope | None = None) -> Classification:
        """The envelope is not used: only the message's content is scored.  Until enough
        is learned the answer is "unsure" without tokenizing the message."""
        lim = self.limits
        try:
            totals = self._store.totals()
            if totals.nham < lim.min_ham or totals.nspam < lim.min_spam:
                return Classification(0.0, "unsure", f"learned {totals.nham} ham, "
                                      f"{totals.nspam} spam (needs {lim.min_ham} and "
                                      f"{lim.min_spam})",
                                      {"nham": totals.nham, "nspam": totals.nspam})
            tokens = {token_hash(t): t for t in tokenize(raw)}
            known = self._probabilities.table(totals.revision)
            fresh = self._score_new([h for h in tokens if h not in known], totals)
        except SQLAlchemyError as err:
            raise ClassifierUnavailable(f"token database: {type(err).__name__}") from err
        extra = {"nham": totals.nham, "nspam": totals.nspam, "tokens": len(tokens)}
        probs = []
        for h, text in tokens.items():
            p = fresh[h] if h in fresh else known[h]
            if p is not None:
                probs.append((text, p))
        indicator = combine(p for _, p in probs)
        label = ("spam" if indicator >= lim.spam_cutoff
                 else "ham" if indicator <= lim.ham_cutoff else "unsure")
        points = round(to_points(indicator, lim.ham_cutoff, lim.spam_cutoff), 2)
        top = " ".join(f"{t[:30]}={p:.2f}" for t, p in strongest(probs))
        return Classification(points, label, f"p={indicator:.4f} {top}",
                              {**extra, "probability": indicator})

    def _score_new(self, hashes: list[int], totals: Totals) -> dict[int, float | None]:
        """The probabilities of tokens not scored yet under ``totals``' revision, read
        from the database and kept for the next messages."""
        if not hashes:
            return {}
        counts = self._store.counts(hashes)
        fresh = {h: (token_probability(counts[h], totals.nham, totals.nspam)
                     if h in counts else None) for h in hashes}
        self._probabilities.add(totals.revision, fresh)
        return fresh

    def learn(self, raw: bytes, spam: bool) -> None:
        self.learn_many([raw], spam)

    def forget(self, raw: bytes, spam: bool) -> None:
        self.forget_many([raw], spam)

    def learn_many(self, raws: Iterable[bytes], spam: bool) -> TrainResult:
        """Learn a batch in one transaction (what ``ie-cli learn`` uses)."""
        return self._store.learn([self.sample(r, spam) for r in raws], self._app.clock.now())

    def forget_many(self, raws: Iterable[bytes], spam: bool) -> TrainResult:
        return self._store.forget([self.sample(r, spam) for r in raws])

    @staticmethod
    def sample(raw: bytes, spam: bool) -> Sample:
        return Sample(message_digest(raw), spam, sorted({token_hash(t) for t in tokenize(raw)}))

    def stats(self) -> Mapping[str, Any]:
        totals = self._store.totals()
        lim = self.limits
        done = min(totals.nham, lim.min_ham) + min(totals.nspam, lim.min_spam)
        return {"ham_messages": totals.nham, "spam_messages": totals.nspam,
                "tokens": self._store.token_count(), "min_ham": lim.min_ham,
                "min_spam": lim.min_spam,
                "ready": totals.nham >= lim.min_ham and totals.nspam >= lim.min_spam,
                "progress": f"{100 * done // max(1, lim.min_ham + lim.min_spam)}% of what it "
                            f"needs to be ready ({min(totals.nspam, lim.min_spam)} of "
                            f"{lim.min_spam} spam, {min(totals.nham, lim.min_ham)} of "
                            f"{lim.min_ham} ham)"}
