"""Junk retention: messages older than N days are expunged from every mailbox's Junk
folder with Dovecot's own ``doveadm expunge`` (docs/incoming.md, "Junk retention").

N is ``incoming.junk_retention_days`` (0: keep for ever), or the account's own value
(``accounts edit --junk-retention DAYS|default``).  The users come from Dovecot's userdb
(``doveadm user '*'``); each is mapped to an account as a recipient address is (a user
name without ``@`` is the account of that name).  "Older" is by the date the message
was saved into Junk (``savedbefore``) or, with ``incoming.junk_retention_by = received``,
by its IMAP internal date (``before``).  Run daily by ie-filterd and by
``ie-cli incoming expunge-junk``.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

from ie_core import App, ConfigError, InvalidInput
from ie_core.account_options import AccountOption
from ie_core.background import BackgroundService, periodic
from ie_core.identity import valid_account
from ie_core.runtime import RuntimeSetting, current
from ie_plugins.incoming.dovecot import TOOL_TIMEOUT, checked_mailbox
from ie_plugins.incoming.policy import is_enabled, recipient_account

log = logging.getLogger("ie.incoming")

DAYS = RuntimeSetting(
    "incoming.junk_retention_days", int, 0,
    "Expunge messages older than this many days from every Junk folder (0: keep them; "
    "an account may set its own).")
SEARCH_KEYS = {"saved": "savedbefore", "received": "before"}
MAX_DAYS = 36500


def _key(account: str) -> str:
    return f"incoming.junk_retention:{account}"


def parse_days(text: str) -> str:
    """``accounts edit --junk-retention``: a number of days (0: keep) or ``default``."""
    value = text.strip().lower()
    if value == "default":
        return value
    if not re.fullmatch(r"[0-9]{1,6}", value) or int(value) > MAX_DAYS:
        raise InvalidInput(f"--junk-retention takes a number of days from 0 to {MAX_DAYS} "
                           f"or default, not {text[:40]!r}")
    return str(int(value))


def account_days(app: App, account: str) -> int:
    """The account's own retention in days, else the server's."""
    own = app.settings.get(_key(account))
    return int(own) if own is not None else int(current(app, DAYS))


def _get(app: App, account: str) -> str:
    own = app.settings.get(_key(account))
    return "default" if own is None else str(own)


def _set(app: App, account: str, value: str) -> None:
    app.settings.set(_key(account), None if value == "default" else int(value))


ACCOUNT_OPTION = AccountOption(
    "junk-retention", (), "days this account's Junk folders keep spam (0: for ever; "
    "default: incoming.junk_retention_days)", _get, _set, parse=parse_days,
    metavar="DAYS|default")


@dataclass
class UserResult:
    user: str
    account: str
    days: int
    expunged: int = 0
    error: str = ""


@dataclass
class RetentionReport:
    users: list[UserResult] = field(default_factory=list)

    @property
    def expunged(self) -> int:
        return sum(u.expunged for u in self.users)

    @property
    def failed(self) -> list[UserResult]:
        return [u for u in self.users if u.error]


class Doveadm:
    """``doveadm -c CONFIG`` commands, each one line of error on failure."""

    def __init__(self, app: App) -> None:
        self.config = app.config.get("incoming.dovecot_config")

    def run(self, *args: str) -> str:
        argv = ["doveadm", "-c", self.config, *args]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                                  check=False)
        except FileNotFoundError:
            raise ConfigError("doveadm: not found (is Dovecot installed?)") from None
        except subprocess.TimeoutExpired:
            raise ConfigError(f"doveadm {args[0]}: no answer after {TOOL_TIMEOUT:g} "
                              "seconds") from None
        if proc.returncode != 0:
            # the first line says why (a panic's backtrace follows it)
            why = next((line.strip() for line in proc.stderr.splitlines() if line.strip()),
                       f"exit {proc.returncode}")
            raise ConfigError(f"doveadm {args[0]} failed: {why[:300]}")
        return proc.stdout

    def users(self) -> list[str]:
        return [line.strip() for line in self.run("user", "*").splitlines() if line.strip()]


def user_account(app: App, user: str) -> str:
    if "@" in user:
        return recipient_account(app, user)
    return user if valid_account(user) else "root"


def expunge_junk(app: App, *, dry_run: bool = False, account: str | None = None,
                 doveadm: Doveadm | None = None) -> RetentionReport:
    """Expunge (or, with ``dry_run``, count) what each user's Junk keeps past its
    account's retention; ``account`` limits it to that account's users."""
    tool = doveadm or Doveadm(app)
    junk = checked_mailbox("incoming.junk_mailbox", app.config.get("incoming.junk_mailbox"))
    by = app.config.get("incoming.junk_retention_by")
    if by not in SEARCH_KEYS:
        raise ConfigError(f"incoming.junk_retention_by must be saved or received, not {by!r}")
    report = RetentionReport()
    for user, owner in _users(app, tool.users()):
        if account is not None and owner != account:
            continue
        days = account_days(app, owner)
        if days <= 0:
            continue
        result = UserResult(user, owner, days)
        query = ["mailbox", junk, SEARCH_KEYS[by], f"{days}d"]
        try:
            found = tool.run("search", "-u", user, *query).split()
            result.expunged = len(found) // 2  # "<mailbox guid> <uid>" per message
            if found and not dry_run:
                tool.run("expunge", "-u", user, *query)
        except ConfigError as err:
            result.error = str(err)
            log.warning("event=junk_retention_failed user=%s error=%s", user, err)
        report.users.append(result)
        if result.expunged and not dry_run and not result.error:
            log.info("event=junk_expunged user=%s account=%s days=%d count=%d", user, owner,
                     days, result.expunged)
    return report


def _users(app: App, users: Iterable[str]) -> list[tuple[str, str]]:
    return [(u, user_account(app, u)) for u in users]


def service(app: App) -> BackgroundService:
    """Daily in ie-filterd (``incoming.junk_retention_interval``), the first run an hour
    after start; nothing is done while incoming filtering is off."""
    def step() -> None:
        if not is_enabled(app):
            return
        try:
            report = expunge_junk(app)
        except ConfigError as err:
            log.warning("event=junk_retention_failed error=%s", err)
            return
        log.info("event=junk_retention users=%d expunged=%d failed=%d", len(report.users),
                 report.expunged, len(report.failed))

    return periodic("junk-retention", app.config.get("incoming.junk_retention_interval"),
                    step, first=min(3600.0, app.config.get("incoming.junk_retention_interval")))
