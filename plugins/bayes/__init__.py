"""The built-in statistical spam classifier (backend name ``builtin``).

A token-based Bayesian filter (Robinson's f(w), Fisher/chi-square combining) whose
token counts live in the shared database; see ``docs/classifiers.md``.  The ``classify``
plugin picks it per direction and drives learning.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

from ie_core import App, ConfigKey, hookimpl
from ie_core.classifier import Classifier
from ie_plugins.bayes.classifier import BuiltinClassifier, Limits

_instances: weakref.WeakKeyDictionary[App, BuiltinClassifier] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey("bayes", "min_ham", int, 100, "Ham messages the built-in classifier must "
                  "have learned before it gives an opinion (until then: unsure, 0 points)."),
        ConfigKey("bayes", "min_spam", int, 100, "Spam messages it must have learned "
                  "before it gives an opinion."),
        ConfigKey("bayes", "ham_cutoff", float, 0.2, "Chi-square indicator at or below which "
                  "a message is ham (0..1)."),
        ConfigKey("bayes", "spam_cutoff", float, 0.6, "Indicator at or above which a message "
                  "is spam; between the cutoffs it is unsure."),
    ]


@hookimpl
def ie_classifiers(app: App) -> Sequence[Classifier]:
    cfg = app.config
    limits = Limits(cfg.get("bayes.min_ham"), cfg.get("bayes.min_spam"),
                    cfg.get("bayes.ham_cutoff"), cfg.get("bayes.spam_cutoff"))
    with _lock:
        found = _instances.get(app)
        if found is None:
            found = _instances[app] = BuiltinClassifier(app, limits)
        found.limits = limits  # a reload (SIGHUP) keeps the App and its token cache
    return [found]


@hookimpl
def ie_migration_locations() -> Sequence[str]:
    return [str(Path(__file__).parent / "migrations")]
