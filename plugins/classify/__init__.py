"""Spam classification: the ``classify`` stage, learning, and the classifier commands.

Backends are plugins (``ie_classifiers`` hook): ``builtin`` (the ``bayes`` plugin),
rspamd, SpamAssassin.  Configuration picks one per direction; see ``docs/classifiers.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from ie_core import App, ConfigKey, Stage, StatusItem, hookimpl
from ie_core.runtime import RuntimeSetting
from ie_plugins.classify import cli, health, stage
from ie_plugins.classify.settings import CONFIG_KEYS, THRESHOLDS


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return CONFIG_KEYS


@hookimpl
def ie_runtime_settings() -> Sequence[RuntimeSetting]:
    return list(THRESHOLDS.values())


@hookimpl
def ie_stages(app: App) -> Sequence[Stage]:
    return stage.stages(app)


@hookimpl
def ie_learn(app: App, raw: bytes, spam: bool) -> None:
    """Train the backends of both directions, each once; one failing does not stop the
    others, and the first error is raised after all were tried."""
    first_error: Exception | None = None
    for backend in stage.configured_backends(app):
        try:
            backend.learn(raw, spam)
        except Exception as err:
            first_error = first_error or err
    if first_error is not None:
        raise first_error


@hookimpl
def ie_status(app: App) -> Sequence[StatusItem]:
    return health.status_items(app)


@hookimpl
def ie_cli_commands() -> Sequence[click.Command]:
    return [cli.learn, cli.classifier]
