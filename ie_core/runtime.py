"""Run-time settings that plugins declare and admins change with ``ie-cli filter-settings``.

A plugin declares a :class:`RuntimeSetting` through the ``ie_runtime_settings`` hook and
reads it per message with :func:`current`; the value lives in the database
(:class:`ie_core.settings.RuntimeSettings`), so a change applies without a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ie_core.app import App
from ie_core.errors import InvalidInput

_TRUE = {"1", "yes", "on", "true"}
_FALSE = {"0", "no", "off", "false"}
RESTORE = "default"
"""The word that restores a setting's declared default, whatever its type."""


@dataclass(frozen=True)
class RuntimeSetting:
    """``name`` is dotted (``winexec.allow_outgoing``); ``choices`` limits str values.

    ``check`` relates settings to each other (thresholds that must stay in order): it
    gets every setting's value as it would be after a change (name -> value, defaults
    filled in) and returns ``None``, or the one line that refuses the change.
    """

    name: str
    type: type
    default: Any
    doc: str
    choices: Sequence[str] = ()
    check: Callable[[Mapping[str, Any]], str | None] | None = field(default=None,
                                                                    compare=False)

    @property
    def option(self) -> str:
        return "--" + self.name.replace(".", "-").replace("_", "-")

    def parse(self, text: str) -> Any:
        """The value typed on the command line, checked; ``None`` (restore the default)
        for :data:`RESTORE` or ``-1`` (the Imunify CLI's word for it), whatever the type:
        no setting here has a use for -1 as a value."""
        text = text.strip()
        if text in (RESTORE, "-1"):
            return None
        if self.type is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise InvalidInput(f"{self.option} takes yes or no, not {text[:40]!r}")
        if self.type in (int, float):
            try:
                value = self.type(text)
            except ValueError:
                raise InvalidInput(f"{self.option} takes a number, not {text[:40]!r}") from None
            return value
        if self.choices and text not in self.choices:
            raise InvalidInput(f"{self.option} takes one of {', '.join(self.choices)}, "
                               f"not {text[:40]!r}")
        return text


def refusal(specs: Sequence[RuntimeSetting], values: Mapping[str, Any]) -> str | None:
    """The first line a setting's ``check`` gives for ``values``, or ``None``."""
    for check in dict.fromkeys(s.check for s in specs if s.check is not None):
        problem = check(values)
        if problem:
            return problem
    return None


def current(app: App, setting: RuntimeSetting) -> Any:
    """The value in force: the database's, or the declared default."""
    value = app.settings.get(setting.name)
    if value is None:
        return setting.default
    return setting.type(value) if setting.type in (int, float) else value


def change(app: App, specs: Sequence[RuntimeSetting], changes: Mapping[str, Any]) -> None:
    """Store ``changes`` (name -> parsed value; ``None`` restores the default) after
    checking the settings together as they would be; InvalidInput, and nothing stored,
    when a ``check`` refuses."""
    by_name = {s.name: s for s in specs}
    after = {name: current(app, spec) for name, spec in by_name.items()}
    for name, value in changes.items():
        after[name] = by_name[name].default if value is None else value
    problem = refusal(specs, after)
    if problem:
        raise InvalidInput(problem)
    for name, value in changes.items():
        app.settings.set(name, value)
