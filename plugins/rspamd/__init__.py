"""The ``rspamd`` classifier backend (choose it with ``classify.*_backend = "rspamd"``).

See :mod:`ie_plugins.rspamd.backend` and docs/external-classifiers.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from ie_core import App, ConfigKey, hookimpl
from ie_core.classifier import Classifier

from .backend import RspamdClassifier

__all__ = ["RspamdClassifier"]


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey("rspamd", "address", str, "127.0.0.1:11333", "HOST:PORT of rspamd's normal "
                  "worker (messages are scored with POST /checkv2)."),
        ConfigKey("rspamd", "controller", str, "127.0.0.1:11334", "HOST:PORT of rspamd's "
                  "controller worker (learning: /learnspam, /learnham; /stat)."),
        ConfigKey("rspamd", "password", str, "", "The controller's password (sent as the "
                  "Password header). Empty: none, for a controller whose secure_ip has us."),
        ConfigKey("rspamd", "timeout", float, 10.0, "Seconds to connect and to wait for each "
                  "read of rspamd's reply before the classifier counts as unavailable."),
    ]


@hookimpl
def ie_classifiers(app: App) -> Sequence[Classifier]:
    cfg = app.config
    return [RspamdClassifier(cfg.get("rspamd.address"), cfg.get("rspamd.controller"),
                             password=cfg.get("rspamd.password"),
                             timeout=cfg.get("rspamd.timeout"))]
