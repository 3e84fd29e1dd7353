"""Per-account switches that plugins add to ``ie-cli accounts edit`` and ``accounts list``.

Example: the incoming plugin's ``--incoming on|off`` (the account owner's opt-out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ie_core.app import App


@dataclass(frozen=True)
class AccountOption:
    """``name`` becomes ``--name`` on ``accounts edit`` and a field of ``accounts list``.

    ``get(app, account)`` returns the value in force (one of ``choices``);
    ``set(app, account, value)`` stores a value already checked against ``choices``.
    """

    name: str
    choices: Sequence[str]
    doc: str
    get: Callable[[App, str], str]
    set: Callable[[App, str, str], None]
