"""The message as the pipeline sees it: envelope, exact bytes, lazily parsed headers."""

from __future__ import annotations

import email
import email.header
import email.parser
import email.policy
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from functools import cached_property
from typing import Any

from ie_core import rawheaders
from ie_core.verdict import Direction, Finding, Verdict


@dataclass
class SenderIdentity:
    """The four sender objects of an outgoing message, plus where they came from.

    ``auth_user`` is only ever taken from what our own MTA wrote (see
    ``ie_core.identity``), never from a header the client could have written.
    """

    account: str = "root"
    domain: str | None = None
    sender_email: str | None = None
    script: str | None = None  # raw X-PHP-Script / X-PHP-Originating-Script value
    script_domain: str | None = None
    script_path: str | None = None
    auth_user: str | None = None
    local_user: str | None = None


@dataclass
class DeliveryGroup:
    """Recipients that get one copy of the message, and the headers only that copy carries.

    A stage that gives recipients different treatment (the incoming plugin's junk mark)
    splits the recipients into groups: each group is delivered in its own downstream
    transaction, so no copy names a recipient of another group.
    """

    rcpt_tos: list[str]
    headers: list[tuple[str, str]] = field(default_factory=list)
    hold_for: str | None = None
    """Set by a stage that holds this group's copy instead of delivering it (the incoming
    quarantine): the account whose quarantine holds it, charged to that account."""


@dataclass
class HeaderChanges:
    """The header edits stages asked for, applied only to the copy that leaves
    (:attr:`MessageContext.raw` is never rewritten): fields removed by name, text put in
    front of a field's value, fields added on top."""

    added: list[tuple[str, str]] = field(default_factory=list)
    removed: set[str] = field(default_factory=set)  # lower-cased names
    prefixed: list[tuple[str, str]] = field(default_factory=list)

    def apply(self, raw: bytes) -> bytes:
        if self.removed:
            raw = rawheaders.remove(raw, lambda name: name in self.removed)
        for name, text in self.prefixed:
            raw = rawheaders.prefix_value(raw, name, text)
        return rawheaders.prepend(raw, self.added) if self.added else raw


@dataclass
class MessageContext:
    """Everything a stage may look at for one message.

    ``raw`` is exactly what the MTA sent us and is never re-serialised.  :attr:`head`
    (the headers) and :attr:`message` (the whole MIME tree) are each parsed once, on
    first use, with the lenient compat32 policy so hostile headers never raise.  ``data``
    is scratch space where a plugin keeps its own per-message state, keyed by its stage
    name.  Header changes go through :meth:`add_header`, :meth:`remove_header` and
    :meth:`prefix_header`.
    """

    direction: Direction
    raw: bytes
    mail_from: str
    rcpt_tos: list[str]
    received_at: datetime
    queue_id: str | None = None
    peer: str | None = None
    mail_options: list[str] = field(default_factory=list)
    """The MAIL parameters passed on downstream (``SMTPUTF8``, ``BODY=``)."""
    rcpt_params: dict[str, list[str]] = field(default_factory=dict)
    """Each recipient's RCPT parameters, passed on downstream."""
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: SenderIdentity = field(default_factory=SenderIdentity)
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False  # ie-cli check: nothing may be counted, held or learned
    groups: list[DeliveryGroup] = field(default_factory=list)
    """How the recipients are split into copies (empty: one copy for all of them)."""
    header_changes: HeaderChanges = field(default_factory=HeaderChanges)
    decided: Verdict | None = None
    """Set by the pipeline once the checks are done: see :attr:`verdict`."""

    @property
    def verdict(self) -> Verdict:
        """The verdict so far, for the decide and decorate phases: the checks' verdict
        while deciding (with each decision's finding added), the final one while
        decorating.  Raises during the check phase (there is none yet)."""
        if self.decided is None:
            raise RuntimeError("the verdict is not known before the checks are done")
        return self.decided

    def add_header(self, name: str, value: str) -> None:
        """Add a field on top of the copy that leaves (control characters are blanked)."""
        self.header_changes.added.append((name, value))

    def remove_header(self, name: str) -> None:
        """Remove every field named ``name`` the message arrived with from the copy that
        leaves (fields added with :meth:`add_header` stay)."""
        self.header_changes.removed.add(name.lower())

    def prefix_header(self, name: str, text: str) -> None:
        """Put ``text`` in front of the first ``name`` field's value (a subject tag)."""
        self.header_changes.prefixed.append((name, text))

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex) of the message as the MTA handed it over (worked out at first
        use, before any stage changes :attr:`raw`)."""
        return hashlib.sha256(self.raw).hexdigest()

    @cached_property
    def head(self) -> Message:
        """The header block only (cheap whatever the body's size): what core reads.  Only
        the bytes before the first blank line are parsed; the payload holds no body."""
        return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
            self.raw[:rawheaders.header_end(self.raw)], headersonly=True)

    @cached_property
    def message(self) -> Message:
        """The whole MIME tree (parsed on first use; core itself never needs it)."""
        parser = email.parser.BytesParser(policy=email.policy.compat32)
        try:
            return parser.parsebytes(self.raw)
        except RecursionError:
            # multiparts nested ~1000 deep defeat the email package's recursive parser;
            # the headers are all there, the body stays one unparsed payload
            return parser.parsebytes(self.raw, headersonly=True)

    def header(self, name: str, default: str = "") -> str:
        """The first header ``name`` decoded to text; never raises on bad encodings."""
        value = self.head.get(name)
        if value is None:
            return default
        return decode_header_value(value)

    def headers(self, name: str) -> list[str]:
        return [decode_header_value(v) for v in self.head.get_all(name, [])]

    @property
    def size(self) -> int:
        return len(self.raw)

    def delivery_groups(self) -> list[DeliveryGroup]:
        """The copies to deliver: :attr:`groups`, each recipient in exactly one of them (a
        recipient no group names gets a plain copy; one named twice, its first group),
        groups without recipients dropped.  One plain group when nobody split them.
        Groups to hold (:attr:`DeliveryGroup.hold_for`) are left out: see
        :meth:`held_groups`."""
        return [g for g in self._split() if g.hold_for is None]

    def held_groups(self) -> list[DeliveryGroup]:
        """The groups whose copy is held instead of delivered (same rules as
        :meth:`delivery_groups`: each recipient in one group only)."""
        return [g for g in self._split() if g.hold_for is not None]

    def _split(self) -> list[DeliveryGroup]:
        seen: set[str] = set()
        groups = []
        for group in self.groups:
            rcpts = [r for r in group.rcpt_tos if r in self.rcpt_tos and r not in seen]
            seen.update(rcpts)
            if rcpts:
                groups.append(DeliveryGroup(rcpts, list(group.headers), group.hold_for))
        rest = [r for r in self.rcpt_tos if r not in seen]
        if rest:
            groups.append(DeliveryGroup(rest))
        return groups


def decode_header_value(value: object) -> str:
    """Decode RFC 2047 words; undecodable bytes become U+FFFD instead of an exception."""
    if isinstance(value, email.header.Header):
        value = str(value)
    text = str(value)
    try:
        parts = email.header.decode_header(text)
    except Exception:
        return _clean(text)
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            try:
                out.append(chunk.decode(charset or "ascii", errors="replace"))
            except LookupError:
                out.append(chunk.decode("latin-1"))
        else:
            out.append(chunk)
    return _clean("".join(out))


def _clean(text: str) -> str:
    # surrogateescape'd raw 8-bit bytes from the parser, folded whitespace
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(text.split())
