"""The contract between the ``classify`` stage and classifier backends (plugins).

A backend is registered through the ``ie_classifiers`` hook and chosen per direction by
configuration.  Scores are *points* on the SpamAssassin/rspamd scale (higher is spammier,
about 5 and up is spam); each backend maps its native result onto that scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ie_core.errors import IeError


class ClassifierUnavailable(IeError):
    """The backend is down, timed out or answered nonsense (the stage then applies the
    configured fallback; for outgoing mail that is a tempfail by default).  Raise it
    ``from`` the error that caused it: a :class:`TimeoutError` cause makes it a timeout."""

    @property
    def timed_out(self) -> bool:
        return isinstance(self.__cause__, TimeoutError)


@dataclass(frozen=True)
class Classification:
    score: float
    label: str  # "spam", "ham" or "unsure" (too little training to tell)
    detail: str = ""  # symbols / tokens that decided, for logs and ie-cli check
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Envelope:
    """What the MTA told us about a message besides its bytes.  Backends that can use it
    (rspamd judges forged senders, authenticated users, client IPs) do; others ignore it.

    ``mail_from`` is ``""`` for the null sender ``<>``; ``client_ip`` is the address of
    whoever handed the message to ie (for an after-queue filter, the MTA itself);
    ``auth_user`` is set only when our own MTA vouched for it (see ``ie_core.identity``).
    """

    mail_from: str = ""
    rcpt_tos: tuple[str, ...] = ()
    client_ip: str | None = None
    queue_id: str | None = None
    auth_user: str | None = None


class Classifier(Protocol):
    name: str

    def classify(self, raw: bytes, envelope: Envelope | None = None) -> Classification:
        """Score one message (blocking; called in a worker thread).  ``envelope`` is
        ``None`` when unknown (the benchmark, tests).  Raise
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


@runtime_checkable
class HealthCheck(Protocol):
    """Optional for a backend: a cheap reachability test for ``ie-config status``.
    Backends without it are checked with :meth:`Classifier.stats`."""

    def check(self, timeout: float) -> str:
        """Within about ``timeout`` seconds, make sure the backend could score a message
        now; return what was checked (``"127.0.0.1:11333"``), or raise
        :class:`ClassifierUnavailable` saying why not."""
        ...
