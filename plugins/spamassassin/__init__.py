"""The ``spamassassin`` classifier backend (``classify.*_backend = "spamassassin"``): a
running spamd, spoken to with the spamd protocol.

See :mod:`ie_plugins.spamassassin.spamd` and docs/external-classifiers.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from ie_core import App, ConfigKey, hookimpl
from ie_core.classifier import Classifier

from .spamd import SpamAssassinClassifier

__all__ = ["SpamAssassinClassifier"]


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey("spamassassin", "address", str, "127.0.0.1:783", "HOST:PORT where spamd "
                  "listens (learning needs spamd started with --allow-tell)."),
        ConfigKey("spamassassin", "user", str, "", "User name sent to spamd (its per-user "
                  "preferences and Bayes database). Empty: spamd's default user."),
        ConfigKey("spamassassin", "timeout", float, 30.0, "Seconds for the whole exchange "
                  "with spamd before the classifier counts as unavailable."),
        ConfigKey("spamassassin", "max_size", int, 512000, "Messages larger than this many "
                  "bytes are not sent to spamd (score 0, like spamc's --max-size)."),
    ]


@hookimpl
def ie_classifiers(app: App) -> Sequence[Classifier]:
    cfg = app.config
    return [SpamAssassinClassifier(cfg.get("spamassassin.address"),
                                   user=cfg.get("spamassassin.user"),
                                   timeout=cfg.get("spamassassin.timeout"),
                                   max_size=cfg.get("spamassassin.max_size"))]
