"""The incoming policy: who gets filtered, and the per-recipient junk marks.

Two stages for incoming mail:

- ``incoming`` (a check, priority 150, before the content checks) decides per recipient
  whether the message is filtered for it: the server switch is on, the recipient's
  account has not opted out, the recipient is not whitelisted.  When nobody is left it
  ends the checks, so the message passes through unjudged (the classifier does no work).
- ``incoming-mark`` (a decoration: it sees the final verdict) marks the message
  ``X-IE-Junk: all`` when the verdict is JUNK.  When only some recipients are
  filtered, the recipients are split into two delivery groups: the filtered ones get a
  copy with the mark, the others a copy without it, each in its own downstream
  transaction, so no copy names another recipient (a Bcc stays blind).  The Sieve script
  files a copy marked ``all`` into Junk; the copy also carries ``incoming.spam_header``
  (``X-Spam: Yes`` by default) for Sieve rules written for other filters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from ie_core import Action, App, Direction, Finding, MessageContext, Phase, SenderIdentity, Stage
from ie_core.account_options import AccountOption
from ie_core.db import among
from ie_core.identity import domain_of, normalise_address
from ie_core.message import DeliveryGroup
from ie_core.runtime import RuntimeSetting, current
from ie_plugins.incoming.models import IncomingAccount

JUNK_HEADER = "X-IE-Junk"
JUNK_ALL = "all"
STATE_KEY = "incoming"

FILTERED = "filtered"
OFF = "off"
OPTED_OUT = "opted_out"
WHITELISTED = "whitelisted"

ENABLED = RuntimeSetting("incoming.enabled", bool, False,
                         "Filter incoming mail (ie-config enable-incoming turns it on).")
SUBJECT_PREFIX = RuntimeSetting("incoming.subject_prefix", str, "",
                                "Prefix for the subject of incoming spam (empty: none; "
                                "changing the subject breaks DKIM signatures).")


@dataclass
class Recipient:
    address: str  # normalised
    account: str
    status: str
    rcpt: str = ""  # as the envelope gave it


@dataclass
class IncomingState:
    """What the ``incoming`` stage decided, left in ``ctx.data["incoming"]``."""

    recipients: list[Recipient] = field(default_factory=list)
    junk: bool = False  # marked for Junk (for every filtered recipient)

    @property
    def filtered(self) -> list[Recipient]:
        return [r for r in self.recipients if r.status == FILTERED]

    def accounts(self) -> dict[str, bool]:
        """account -> whether the message was filtered for any of its recipients."""
        result: dict[str, bool] = {}
        for r in self.recipients:
            result[r.account] = result.get(r.account, False) or r.status == FILTERED
        return result


def is_enabled(app: App) -> bool:
    return bool(current(app, ENABLED))


def opted_out(app: App, accounts: Iterable[str]) -> set[str]:
    names = set(accounts)
    if not names:
        return set()
    query = select(IncomingAccount.account).where(IncomingAccount.enabled.is_(False))
    with app.db.reading() as s:
        rows = s.scalars(among(query, IncomingAccount.account, names)).all()
    return set(rows) & names


def _get_switch(app: App, account: str) -> str:
    return "off" if account in opted_out(app, [account]) else "on"


def _get_switches(app: App, accounts: Sequence[str]) -> dict[str, str]:
    off = opted_out(app, accounts)
    return {a: "off" if a in off else "on" for a in accounts}


def _set_switch(app: App, account: str, value: str) -> None:
    with app.db.session() as s:
        row = s.get(IncomingAccount, account)
        if row is None:
            s.add(IncomingAccount(account=account, enabled=value == "on",
                                  updated_at=app.clock.now()))
        else:
            row.enabled = value == "on"
            row.updated_at = app.clock.now()


ACCOUNT_SWITCH = AccountOption(
    "incoming", ("on", "off"),
    "filter this account's incoming mail (on) or opt it out (off)", _get_switch, _set_switch,
    get_many=_get_switches)


def recipient_account(app: App, address: str) -> str:
    identity = SenderIdentity(domain=domain_of(address), sender_email=address)
    return app.hooks.resolve_account(app, identity) or "root"


def decide_recipients(app: App, rcpt_tos: Iterable[str]) -> IncomingState:
    enabled = is_enabled(app)
    pairs = []
    for rcpt in rcpt_tos:
        address = normalise_address(rcpt) or rcpt.strip().strip("<>").lower()
        pairs.append((rcpt, address, recipient_account(app, address)))
    out = opted_out(app, {a for _, _, a in pairs}) if enabled else set()
    state = IncomingState()
    for rcpt, address, account in pairs:
        if not enabled:
            status = OFF
        elif account in out:
            status = OPTED_OUT
        elif app.hooks.is_whitelisted(app, "recipient", address):
            status = WHITELISTED
        else:
            status = FILTERED
        state.recipients.append(Recipient(address, account, status, rcpt))
    return state


def junk_marks(app: App) -> list[tuple[str, str]]:
    """The headers of a junk copy: ours for the Sieve script, and the spam header existing
    Sieve rules look for (``incoming.spam_header``, ``X-Spam: Yes`` by default; empty:
    none).  Copies that came from outside are removed from every incoming message."""
    marks = [(JUNK_HEADER, JUNK_ALL)]
    name, _, value = app.config.get("incoming.spam_header").partition(":")
    if name.strip():
        marks.append((name.strip(), value.strip()))
    return marks


def make_stages(app: App) -> list[Stage]:
    def policy(ctx: MessageContext) -> Finding | None:
        state = decide_recipients(app, ctx.rcpt_tos)
        ctx.data[STATE_KEY] = state
        if state.filtered:
            return None
        why = sorted({r.status for r in state.recipients}) or [OFF]
        return Finding(stage="incoming", detail="not filtered: " + ",".join(why), final=True)

    def mark(ctx: MessageContext) -> Finding | None:
        for name, _ in junk_marks(app):
            ctx.remove_header(name)  # only we write the marks, whoever the copy is for
        state = ctx.data.get(STATE_KEY)
        if not isinstance(state, IncomingState) or not state.filtered:
            return None
        if ctx.verdict.action is not Action.JUNK:
            return None
        state.junk = True
        marks = junk_marks(app)
        if len(state.filtered) == len(state.recipients):
            for name, value in marks:
                ctx.add_header(name, value)
            prefix = current(app, SUBJECT_PREFIX)
            if prefix:
                ctx.prefix_header("Subject", prefix)
        else:
            ctx.groups = [
                DeliveryGroup([r.rcpt for r in state.filtered], marks),
                DeliveryGroup([r.rcpt for r in state.recipients if r.status != FILTERED])]
        return None

    incoming = frozenset({Direction.INCOMING})
    return [Stage("incoming", policy, incoming, priority=150,
                  description="who the message is filtered for (switch, opt-out, whitelist)"),
            Stage("incoming-mark", mark, incoming, phase=Phase.DECORATE,
                  description="mark junk for Sieve (X-IE-Junk), per recipient group")]
