"""Per-account switches that plugins add to ``ie-cli accounts edit`` and ``accounts list``.

Example: the incoming plugin's ``--incoming on|off`` (the account owner's opt-out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ie_core.app import App
from ie_core.errors import InvalidInput


@dataclass(frozen=True)
class AccountOption:
    """``name`` becomes ``--name`` on ``accounts edit`` and a field of ``accounts list``.

    ``get(app, account)`` returns the value in force (one of ``choices``); ``get_many(app,
    accounts)``, when given, the values of many accounts at once (``accounts list`` of a
    server with thousands of accounts: one query, not one an account);
    ``set(app, account, value)`` stores a value already checked against ``choices``, or,
    for an option that takes free text (``choices`` empty), already returned by ``parse``
    (which raises :class:`ie_core.InvalidInput` with one line for a bad value).
    """

    name: str
    choices: Sequence[str]
    doc: str
    get: Callable[[App, str], str]
    set: Callable[[App, str, str], None]
    parse: Callable[[str], str] | None = None
    metavar: str = ""
    """What ``--name`` takes, for the help, when it is free text (``ADDRESS``)."""
    get_many: Callable[[App, Sequence[str]], dict[str, str]] | None = None

    def values(self, app: App, accounts: Sequence[str]) -> dict[str, str]:
        """account -> the value in force, for every one of ``accounts``."""
        if self.get_many is not None:
            return self.get_many(app, accounts)
        return {account: self.get(app, account) for account in accounts}

    def check(self, value: str) -> str:
        """``value`` as :meth:`set` takes it; InvalidInput when it is not allowed."""
        if self.parse is not None:
            return self.parse(value)
        if value not in self.choices:
            raise InvalidInput(f"--{self.name} takes {' or '.join(self.choices)}, "
                               f"not {str(value)[:40]!r}")
        return value
