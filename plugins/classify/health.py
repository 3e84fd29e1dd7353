"""``ie-config status`` items: is the classifier of each direction able to score mail?

One item per direction (``classifier outgoing``, ``classifier incoming``).  A backend with a
``check`` method (:class:`ie_core.classifier.HealthCheck`: rspamd, SpamAssassin) is pinged
with a short timeout; any other is asked for its :meth:`stats`, which for the built-in
classifier also tells whether it has learned enough to give an opinion (not yet is no
failure: it says "unsure" and mail flows).  An item is required when its direction's
fallback is ``tempfail``, because then a backend that is down stops that mail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ie_core import App, Direction, StatusItem
from ie_core.classifier import Classifier, HealthCheck
from ie_plugins.classify.settings import FALLBACK_TEMPFAIL
from ie_plugins.classify.stage import backend_for

CHECK_TIMEOUT = 3.0  # seconds; status must answer quickly even when a backend hangs


def status_items(app: App) -> list[StatusItem]:
    checked: dict[str, tuple[bool, str]] = {}  # one check per backend, even if shared
    items = []
    for direction in Direction:
        name = f"classifier {direction.value}"
        fallback = app.config.get(f"classify.{direction.value}_fallback")
        required = fallback == FALLBACK_TEMPFAIL
        try:
            backend = backend_for(app, direction)
        except Exception as err:
            items.append(StatusItem(name, False, _one_line(err), required))
            continue
        if backend.name not in checked:
            checked[backend.name] = check(backend)
        ok, detail = checked[backend.name]
        if not ok and not required:
            detail += f" (fallback {fallback}: mail flows unscored)"
        shown = f"{backend.name} {detail}" if ok else f"{backend.name}: {detail}"
        items.append(StatusItem(name, ok, shown, required))
    return items


def check(backend: Classifier) -> tuple[bool, str]:
    """(reachable, what was checked or why it failed)."""
    try:
        if isinstance(backend, HealthCheck):
            return True, backend.check(CHECK_TIMEOUT)
        return True, describe_stats(backend.stats())
    except Exception as err:
        return False, _one_line(err)


def describe_stats(stats: Mapping[str, Any]) -> str:
    """A short line from :meth:`Classifier.stats` (the built-in classifier's keys are shown
    as what they mean; other backends' scalar values as ``key=value``)."""
    if "ham_messages" in stats and "spam_messages" in stats:
        text = f"learned {stats['ham_messages']} ham, {stats['spam_messages']} spam"
        if stats.get("ready") is False:
            text += (f"; unsure until it has learned {stats.get('min_ham')} ham and "
                     f"{stats.get('min_spam')} spam: run 'ie-cli learn --from-mailboxes "
                     "--dry-run', then without --dry-run (or ie-cli learn spam|ham DIR)")
        return text
    shown = [f"{k}={v}" for k, v in stats.items()
             if isinstance(v, str | int | float) and k != "backend"]
    return ", ".join(shown) or "answering"


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__
