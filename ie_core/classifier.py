"""The contract between the ``classify`` stage and classifier backends (plugins).

A backend is registered through the ``ie_classifiers`` hook and chosen per direction by
configuration.  Scores are *points* on the SpamAssassin/rspamd scale (higher is spammier,
about 5 and up is spam); each backend maps its native result onto that scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ie_core.errors import IeError


class ClassifierUnavailable(IeError):
    """The backend is down, timed out or answered nonsense (the stage then applies the
    configured fallback; for outgoing mail that is a tempfail by default)."""


@dataclass(frozen=True)
class Classification:
    score: float
    label: str  # "spam", "ham" or "unsure" (too little training to tell)
    detail: str = ""  # symbols / tokens that decided, for logs and ie-cli check
    extra: Mapping[str, Any] = field(default_factory=dict)


class Classifier(Protocol):
    name: str

    def classify(self, raw: bytes) -> Classification:
        """Score one message (blocking; called in a worker thread).  Raise
        :class:`ClassifierUnavailable` when the backend cannot answer."""
        ...

    def learn(self, raw: bytes, spam: bool) -> None:
        """Train one message as spam or ham."""
        ...

    def forget(self, raw: bytes, spam: bool) -> None:
        """Undo an earlier :meth:`learn` of the same message with the same label."""
        ...

    def stats(self) -> Mapping[str, Any]:
        """What has been learned (messages, tokens...), for ``ie-cli classifier stats``."""
        ...
