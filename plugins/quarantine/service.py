"""The quarantine's one service layer: every operation, with the rules of who may do it.

Both ways in call it: root's ``ie-cli`` directly, and the socket service
(:mod:`.socket_api`) for everybody else, with the caller's identity from the kernel.
Inputs arrive as the user typed them (strings) and are validated here, so both paths
refuse the same things with the same one-line messages.

Rules: root sees and does everything.  A non-root caller is the hosting account of the
same name: it lists, shows, releases and deletes only its own mail, within its hourly
release limit; an id of another account gives the same answer as an unknown id.
"""

from __future__ import annotations

import operator
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from sqlalchemy import String, cast, func, literal_column, select
from sqlalchemy.orm import Session

from ie_core import App, InvalidInput, NotFound, PermissionDenied
from ie_core.account_options import AccountOption
from ie_core.durations import parse_duration
from ie_core.events import emit
from ie_core.identity import valid_account

from . import actions, event_kinds
from .hold import blob_store
from .limits import (
    RELEASES_KEY,
    STORAGE_KEY,
    defaults,
    evicted_by_account,
    lock_account,
    releases_in_last_hour,
)
from .models import (
    ACCOUNT_STATES,
    BLOCK,
    DIRECTIONS,
    HeldMessage,
    QuarantineAccount,
    QuarantineLog,
)
from .reinjectors import Reinjectors
from .view import details, item

ROOT = "root"
FEW_MATCHES = 1000
"""A text filter matching at most this many held messages is listed from one scan."""
MAX_LIST = 1000
MAX_IDS = 1000
MAX_INT32 = 2**31 - 1  # the largest value an Integer column holds on every backend


@dataclass(frozen=True)
class Caller:
    """Who asks: ``user`` is the Unix user name; a non-root user is its own account."""

    user: str
    is_root: bool

    @classmethod
    def root(cls) -> Caller:
        return cls(ROOT, True)


# -- input checks ---------------------------------------------------------------------
def account_name(value: Any) -> str:
    if not isinstance(value, str) or not valid_account(value):
        raise InvalidInput(f"invalid account name: {str(value)[:80]!r}")
    return value


def message_id(value: str) -> str:
    try:
        parsed = uuid.UUID(value.strip())
    except (ValueError, AttributeError):
        raise InvalidInput(f"malformed message id: {str(value)[:80]!r}") from None
    return str(parsed)


def message_ids(value: Any) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("--ids takes one or more message ids separated by commas")
    ids = [message_id(v) for v in value.split(",") if v.strip()]
    if not ids or len(ids) > MAX_IDS:
        raise InvalidInput(f"--ids takes 1 to {MAX_IDS} message ids")
    return list(dict.fromkeys(ids))


def day(value: Any, option: str) -> datetime:
    """A calendar day, ``YYYY-MM-DD``, as its first instant in UTC."""
    try:
        return datetime.strptime(str(value).strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"{option} takes a date as YYYY-MM-DD, not {str(value)[:40]!r}"
                           ) from None
def direction_name(value: Any) -> str:
    if value not in DIRECTIONS:
        raise InvalidInput(f"--direction takes {' or '.join(DIRECTIONS)}, "
                           f"not {str(value)[:40]!r}")
    return str(value)


def count(value: Any, option: str, *, minimum: int = 0, maximum: int = 2**62) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{option} takes a whole number, not {str(value)[:40]!r}") from None
    if not minimum <= number <= maximum:
        raise InvalidInput(f"{option} must be between {minimum} and {maximum}, not {number}")
    return number


def override(value: Any, option: str, maximum: int = 2**62) -> int | None:
    """An account's own limit: a number from 0 to ``maximum``, or ``default`` to use the
    default again."""
    if isinstance(value, str) and value.strip().lower() == "default":
        return None
    return count(value, option, maximum=maximum)


# -- the service ----------------------------------------------------------------------
class QuarantineService:
    def __init__(self, app: App) -> None:
        self.app = app
        self.reinjectors = Reinjectors(app)

    def close(self) -> None:
        self.reinjectors.close()

    def _scope(self, caller: Caller, account: Any) -> str | None:
        """The account the caller acts on; ``None`` means every account (root only)."""
        if account is not None:
            account = account_name(account)
        if caller.is_root:
            return None if account in (None, ROOT) else account
        if account not in (None, caller.user):
            raise PermissionDenied(f"you may only act on your own account ({caller.user})")
        return caller.user

    def _find(self, s: Session, held_id: str, scope: str | None) -> HeldMessage:
        row = s.get(HeldMessage, held_id)
        if row is None or (scope is not None and row.account != scope):
            raise NotFound(f"no held message with id {held_id}")
        return row

    # emails -----------------------------------------------------------------------
    def emails_list(self, caller: Caller, account: Any = None, since: Any = None,
                    limit: Any = 25, offset: Any = 0, reason: Any = None,
                    sender: Any = None, recipient: Any = None, date_from: Any = None,
                    date_to: Any = None, direction: Any = None) -> dict[str, Any]:
        """Held messages, newest first; ``date_from`` and ``date_to`` are days
        (``YYYY-MM-DD``, UTC, both included)."""
        scope = self._scope(caller, account)
        where = []
        if scope is not None:
            where.append(HeldMessage.account == scope)
        if direction is not None:
            where.append(HeldMessage.direction == direction_name(direction))
        if reason:
            where.append(HeldMessage.reasons_key.contains(f",{str(reason).strip()},",
                                                          autoescape=True))
        if sender:
            where.append(self._contains_any_case(HeldMessage.mail_from, str(sender)))
        if recipient:
            where.append(func.lower(cast(HeldMessage.rcpt_tos, String))
                         .contains(str(recipient).lower(), autoescape=True))
        window = []  # (operator, bound) on the arrival time
        if since is not None:
            window.append((operator.ge, self.app.clock.now() - parse_duration(since)))
        if date_from:
            window.append((operator.ge, day(date_from, "--date-from")))
        if date_to:
            window.append((operator.lt, day(date_to, "--date-to") + timedelta(days=1)))
        n = count(limit, "--limit", minimum=1, maximum=MAX_LIST)
        skip = count(offset, "--offset")
        arrival: Any = HeldMessage.received_at
        if (reason or sender) and scope is None and direction is None and not recipient \
                and self.app.db.is_sqlite:
            # Only a scan can match a part of a value, and the narrow index
            # ix_quarantine_messages_text_filters has every column these filters read;
            # but SQLite would rather search the arrival time's range, all of it by
            # default (--since 30d), reading each row from the table.  A unary + keeps
            # it off that index.
            arrival = literal_column(f"+{HeldMessage.__tablename__}.received_at",
                                     HeldMessage.received_at.type)
        in_window = [op(HeldMessage.received_at, bound) for op, bound in window]
        counted = [*where, *(op(arrival, bound) for op, bound in window)]
        newest = (HeldMessage.received_at.desc(), HeldMessage.id.desc())
        with self.app.db.reading() as s:
            few = None
            if sender or recipient:
                # A part of an address matches few rows, or many: first look for at
                # most FEW_MATCHES of them.  Few: that one scan gives the total and the
                # page (rather than a count and then a search for the newest ones).
                # (A reason matches many: the few reasons there are share the mail.)
                found = s.execute(select(HeldMessage.id, HeldMessage.received_at)
                                  .where(*counted).limit(FEW_MATCHES + 1)).all()
                if len(found) <= FEW_MATCHES:
                    few = sorted(found, key=lambda r: (r.received_at, r.id), reverse=True)
            if few is not None:
                total = len(few)
                page: Any = [r.id for r in few[skip:skip + n]]
            else:
                total = s.scalar(select(func.count()).select_from(HeldMessage).where(*counted)) or 0
                # Both keys descending, as the index (received_at, id) has them, and the
                # page's ids first (from that index alone when no filter needs another
                # column), then their rows: a deep page skips index entries, not rows,
                # and sorts nothing.
                page = (select(HeldMessage.id).where(*where, *in_window).order_by(*newest)
                        .limit(n).offset(skip))
            items = [item(r) for r in s.scalars(select(HeldMessage).where(
                HeldMessage.id.in_(page)).order_by(*newest))]
        return {"items": items, "max_count": total}

    def _contains_any_case(self, column: Any, text: str) -> Any:
        """``column`` contains ``text``, ignoring the case of ASCII letters (addresses'
        other letters are rare, and SQLite folds no others).  On SQLite plain LIKE,
        which does that, so a count reads the column from an index without calling
        lower() for each row; on PostgreSQL lower() in the "C" collation, which folds
        only ASCII and is quicker than the database's (a million rows: 225 -> 141 ms)
        and than ILIKE (288 ms)."""
        if self.app.db.is_sqlite:
            return column.contains(text, autoescape=True)
        return func.lower(column.collate("C")).contains(
            "".join(c.lower() if c.isascii() else c for c in text), autoescape=True)

    def emails_history(self, caller: Caller, account: Any = None, since: Any = None,
                       limit: Any = 25, offset: Any = 0) -> dict[str, Any]:
        """Messages that left the quarantine (released, deleted, evicted): who, when."""
        scope = self._scope(caller, account)
        where = []
        if scope is not None:
            where.append(QuarantineLog.account == scope)
        if since is not None:
            where.append(QuarantineLog.at >= self.app.clock.now() - parse_duration(since))
        n = count(limit, "--limit", minimum=1, maximum=MAX_LIST)
        skip = count(offset, "--offset")
        with self.app.db.session() as s:
            total = s.scalar(select(func.count()).select_from(QuarantineLog).where(*where))
            rows = s.scalars(select(QuarantineLog).where(*where)
                             .order_by(QuarantineLog.at.desc(), QuarantineLog.id.desc())
                             .limit(n).offset(skip)).all()
        items = [{"email_id": r.message_id, "account_name": r.account,
                  "direction": r.direction, "action": r.action,
                  "actor": r.actor, "date": r.at.isoformat(), "sender": r.mail_from,
                  "recipients": list(r.rcpt_tos), "subject": r.subject,
                  "reasons": list(r.reasons), "size_bytes": r.size} for r in rows]
        return {"items": items, "max_count": int(total or 0)}

    def emails_show(self, caller: Caller, id: Any, account: Any = None) -> dict[str, Any]:
        held_id = message_id(str(id))
        scope = self._scope(caller, account)
        with self.app.db.session() as s:
            row = self._find(s, held_id, scope)
        try:
            data = blob_store(self.app).read(held_id)
        except FileNotFoundError:
            raise NotFound(f"no held message with id {held_id}") from None
        return details(row, data)

    def emails_raw(self, caller: Caller, id: Any, account: Any = None) -> BinaryIO:
        """The held message's exact bytes, open for reading in chunks (never read whole:
        a 50 MB message costs the service a buffer, not 50 MB)."""
        held_id = message_id(str(id))
        scope = self._scope(caller, account)
        with self.app.db.session() as s:
            self._find(s, held_id, scope)
        try:
            return blob_store(self.app).path(held_id).open("rb")
        except FileNotFoundError:
            raise NotFound(f"no held message with id {held_id}") from None

    def emails_release(self, caller: Caller, ids: Any, account: Any = None) -> dict[str, Any]:
        wanted = message_ids(ids)
        scope = self._scope(caller, account)
        limit = None
        if not caller.is_root:
            limit = actions.ReleaseLimit(caller.user, self._releases_limit(caller.user))
        done, failed = [], {}
        for held_id in wanted:
            try:
                with self.app.db.session() as s:
                    self._find(s, held_id, scope)
                actions.release(self.app, self.reinjectors, held_id, caller.user, limit, scope)
                done.append(held_id)
            except NotFound as err:
                failed[held_id] = str(err)
            except actions.ReleaseRefused as err:
                failed[held_id] = f"not released, still held: {err}"
        return {"done": done, "failed": failed}

    def emails_remove(self, caller: Caller, ids: Any, account: Any = None,
                      spam: bool = False) -> dict[str, Any]:
        wanted = message_ids(ids)
        scope = self._scope(caller, account)
        failed: dict[str, str] = {}
        with self.app.db.session() as s:
            for held_id in wanted:
                try:
                    self._find(s, held_id, scope)
                except NotFound as err:
                    failed[held_id] = str(err)
        present = [i for i in wanted if i not in failed]
        done = actions.delete(self.app, present, caller.user, spam=bool(spam)) if present else []
        for held_id in present:
            if held_id not in done:
                failed[held_id] = "not deleted: it is being released"
        return {"done": done, "failed": failed}

    # accounts ---------------------------------------------------------------------
    def _releases_limit(self, account: str) -> int:
        with self.app.db.session() as s:
            row = s.get(QuarantineAccount, account)
            own = row.releases_limit if row is not None else None
        return defaults(self.app).releases_limit if own is None else own

    def releases_left(self, caller: Caller, name: Any = None) -> dict[str, int]:
        """The account's hourly release limit, what was released under it in the last
        hour, and what is left (what a non-root caller may still release now)."""
        scope = self._scope(caller, name)
        if scope is None:
            raise InvalidInput("give the account whose releases to count")
        limit = self._releases_limit(scope)
        with self.app.db.session() as s:
            used = releases_in_last_hour(s, scope, self.app.clock.now())
        return {"releases_limit": limit, "released_last_hour": used,
                "left": max(0, limit - used)}

    def accounts_list(self, caller: Caller, name: Any = None, limit: Any = 0,
                      offset: Any = 0) -> dict[str, Any]:
        """The accounts by name (``limit`` of them from ``offset``; 0: all), with their
        usage (kept in each account's row) and evictions of the last hour."""
        scope = self._scope(caller, name)
        n = count(limit, "--limit", maximum=MAX_LIST)
        skip = count(offset, "--offset")
        d = defaults(self.app)
        now = self.app.clock.now()
        with self.app.db.session() as s:
            query = select(QuarantineAccount.name, QuarantineAccount.state,
                           QuarantineAccount.limit_bytes, QuarantineAccount.releases_limit,
                           QuarantineAccount.used_bytes).order_by(QuarantineAccount.name)
            total_query = select(func.count()).select_from(QuarantineAccount)
            if scope is not None:
                query = query.where(QuarantineAccount.name == scope)
                total_query = total_query.where(QuarantineAccount.name == scope)
            if n:
                query = query.limit(n)
            rows: list[tuple[str, str, int | None, int | None, int]] = [
                (r.name, r.state, r.limit_bytes, r.releases_limit, r.used_bytes)
                for r in s.execute(query.offset(skip))]
            total = int(s.scalar(total_query) or 0) if n or skip else len(rows)
            if not rows and scope is not None and not caller.is_root:
                rows = [(scope, "active", None, None, 0)]
                total = 1
            # set-based: one query for the listed accounts (all of them: no IN list)
            listed = None if scope is None and not n and not skip else [r[0] for r in rows]
            evicted = evicted_by_account(s, now, listed)
            items = [{
                "name": name,
                "limit_bytes": d.limit_bytes if own_limit is None else own_limit,
                "used_bytes": used,
                "state": state,
                "releases_limit": (d.releases_limit if own_releases is None
                                   else own_releases),
                "deleted_last_hour": evicted.get(name, 0),
            } for name, state, own_limit, own_releases, used in rows]
        names = [str(entry["name"]) for entry in items]
        for option in self.app.hooks.account_options():
            values = option.values(self.app, names)
            for entry in items:
                entry[option.name] = values[str(entry["name"])]
        return {"items": items, "max_count": total}

    def accounts_edit(self, caller: Caller, name: Any, state: Any = None, limit: Any = None,
                      releases_limit: Any = None, options: Any = None) -> dict[str, Any]:
        """Change state and limits (root), and the switches other plugins declare
        (``options``, checked against their choices; an owner may set these for its own
        account, like the incoming opt-out)."""
        account = account_name(name)
        chosen = self._account_options(options or {})
        if state is not None or limit is not None or releases_limit is not None or not chosen:
            self._require_root(caller)
        self._scope(caller, account)
        if state is not None and state not in ACCOUNT_STATES:
            raise InvalidInput(f"--state takes {' or '.join(ACCOUNT_STATES)}, "
                               f"not {str(state)[:40]!r}")
        overrides: dict[str, int | None] = {}
        if limit is not None:
            overrides["limit_bytes"] = override(limit, "--limit")
        if releases_limit is not None:
            overrides["releases_limit"] = override(releases_limit, "--releases-limit",
                                                 maximum=MAX_INT32)
        if state is None and not overrides and not chosen:
            raise InvalidInput("nothing to change: give --state, --limit or --releases-limit")
        with self.app.db.session() as s:
            row = lock_account(s, self.app, account)
            if state is not None and state != row.state:
                row.state = state
                if state == BLOCK:
                    emit(s, self.app.clock, event_kinds.ACCOUNT_BLOCKED, account,
                         {"account": account, "actor": caller.user})
            for column, value in overrides.items():
                setattr(row, column, value)
        for option, choice in chosen:
            option.set(self.app, account, choice)
        self.app.publisher.wake()
        return self._account_row(caller, account)

    def _account_row(self, caller: Caller, account: str) -> dict[str, Any]:
        """The account as ``accounts list`` shows it (``accounts edit`` prints it)."""
        rows = self.accounts_list(caller, account)["items"]
        return rows[0] if rows else {"name": account}

    def _account_options(self, given: Any) -> list[tuple[AccountOption, str]]:
        if not isinstance(given, dict):
            raise InvalidInput("bad account options")
        known = {o.name: o for o in self.app.hooks.account_options()}
        chosen = []
        for name, value in given.items():
            option = known.get(name)
            if option is None:
                raise InvalidInput(f"unknown account option --{str(name)[:40]}")
            chosen.append((option, option.check(str(value))))
        return chosen

    def accounts_remove(self, caller: Caller, name: Any) -> dict[str, Any]:
        """Purge: delete every held message of the account and its own settings."""
        self._require_root(caller)
        account = account_name(name)
        with self.app.db.session() as s:
            if s.get(QuarantineAccount, account) is None:
                raise NotFound(f"no quarantine for account {account}")
            ids = list(s.scalars(select(HeldMessage.id).where(HeldMessage.account == account)))
        done = actions.delete(self.app, ids, caller.user)
        left = len(ids) - len(done)
        if left:
            raise InvalidInput(f"{left} message(s) of {account} are being released; "
                               "try again in a moment")
        with self.app.db.session() as s:
            row = lock_account(s, self.app, account)  # a hold locks it first too
            if s.scalar(select(HeldMessage.id).where(HeldMessage.account == account)
                        .limit(1)) is not None:
                # its used bytes are in the row: keep it while it has messages
                raise InvalidInput(f"mail was held for {account} meanwhile; run the "
                                   "command again")
            s.delete(row)
        return {"deleted": len(done)}

    # defaults ---------------------------------------------------------------------
    def defaults_list(self, caller: Caller) -> dict[str, Any]:
        d = defaults(self.app)
        return {"limit_bytes": d.limit_bytes, "releases_limit": d.releases_limit}

    def defaults_set(self, caller: Caller, releases_limit: Any = None,
                     storage_capacity: Any = None) -> dict[str, Any]:
        self._require_root(caller)
        changes: dict[str, int | None] = {}
        for key, value, option in ((RELEASES_KEY, releases_limit, "--releases-limit"),
                                   (STORAGE_KEY, storage_capacity, "--storage-capacity")):
            if value is not None:
                number = count(value, option, minimum=-1)
                changes[key] = None if number == -1 else number
        if not changes:
            raise InvalidInput("nothing to change: give --releases-limit or --storage-capacity")
        for key, new in changes.items():
            self.app.settings.set(key, new)
        return self.defaults_list(caller)

    @staticmethod
    def _require_root(caller: Caller) -> None:
        if not caller.is_root:
            raise PermissionDenied("only root may change quarantine accounts and defaults")


# Operation name -> (method, the arguments it takes): the socket API's whole surface.
OPERATIONS: dict[str, tuple[str, frozenset[str]]] = {
    "emails.list": ("emails_list", frozenset({"account", "since", "limit", "offset", "reason",
                                              "sender", "recipient", "date_from",
                                              "date_to", "direction"})),
    "emails.show": ("emails_show", frozenset({"id", "account"})),
    "emails.history": ("emails_history", frozenset({"account", "since", "limit", "offset"})),
    "emails.release": ("emails_release", frozenset({"ids", "account"})),
    "emails.remove": ("emails_remove", frozenset({"ids", "account", "spam"})),
    "accounts.list": ("accounts_list", frozenset({"name", "limit", "offset"})),
    "accounts.edit": ("accounts_edit", frozenset({"name", "state", "limit", "releases_limit",
                                                  "options"})),
    "accounts.remove": ("accounts_remove", frozenset({"name"})),
    "defaults.list": ("defaults_list", frozenset()),
    "defaults.set": ("defaults_set", frozenset({"releases_limit", "storage_capacity"})),
}


STREAMS = {"emails.raw": ("emails_raw", frozenset({"id", "account"}))}
"""Operations whose answer is a byte stream (a file opened for the caller), not a dict."""


def _checked(table: dict[str, tuple[str, frozenset[str]]], op: Any, args: Any) -> str:
    spec = table.get(op) if isinstance(op, str) else None
    if spec is None:
        raise InvalidInput(f"unknown operation {str(op)[:40]!r}")
    method, allowed = spec
    if not isinstance(args, dict) or not set(args) <= allowed:
        raise InvalidInput(f"bad arguments for {op}")
    return method


def dispatch(service: QuarantineService, caller: Caller, op: Any,
             args: Any) -> dict[str, Any]:
    """Run operation ``op`` with ``args`` (a dict) as ``caller``."""
    result: dict[str, Any] = getattr(service, _checked(OPERATIONS, op, args))(caller, **args)
    return result


def open_stream(service: QuarantineService, caller: Caller, op: Any, args: Any) -> BinaryIO:
    """Run the streaming operation ``op`` as ``caller``: the open file to send."""
    stream: BinaryIO = getattr(service, _checked(STREAMS, op, args))(caller, **args)
    return stream
