"""Walking a message for Windows executables: MIME parts, attached messages, archives.

:func:`scan` never raises on anything a sender can write: what it cannot read, or could
only read past a bound, is reported as *uninspected* (the stage decides what that means).
The two are kept apart: a place left unread because a scan bound was hit (``bound``) is
what a sender who hides an executable past the bounds produces, while an archive that
cannot be opened (encrypted, rar, corrupt) is ordinary mail too.
The walk stops at the first executable found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ie_plugins.winexec.archives import Member, UnreadableArchive, members
from ie_plugins.winexec.content import Budget, Content, LimitReached, Limits
from ie_plugins.winexec.mime import IDENTITY_ENCODINGS, Entity, parse_entity, split_multipart
from ie_plugins.winexec.names import display, risky_extension
from ie_plugins.winexec.signatures import SNIFF_SIZE, Container, container_kind, executable_kind

MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
MAX_REPORTED = 10
"""Uninspected places kept per scan (the rest are only counted)."""

Where = tuple[str, ...]


@dataclass(frozen=True)
class Place:
    """Something found at ``where`` (names from the message down to the file)."""

    where: Where
    what: str
    bound: bool = False
    """Left unread because a scan bound was hit (not because it cannot be opened)."""

    def __str__(self) -> str:
        path = " > ".join(display(w) for w in self.where) or "message"
        return f"{path}: {self.what}"


@dataclass
class Report:
    hits: list[Place] = field(default_factory=list)
    uninspected: list[Place] = field(default_factory=list)
    uninspected_count: int = 0
    entries: int = 0
    bytes_read: int = 0

    @property
    def bounded(self) -> list[Place]:
        """The kept places that a scan bound left unread."""
        return [p for p in self.uninspected if p.bound]

    @property
    def unopenable(self) -> list[Place]:
        """The kept places that could not be opened or read (no bound involved)."""
        return [p for p in self.uninspected if not p.bound]


def scan(raw: bytes, extensions: tuple[str, ...], limits: Limits) -> Report:
    """Look for Windows executables in the message ``raw`` within ``limits``."""
    walker = _Walker(extensions, Budget(limits))
    try:
        walker.entity(raw, 0, len(raw), depth=0, where=())
    except LimitReached as limit:  # a bound of the whole scan
        walker.skip((), limit.what, bound=True)
    walker.report.entries = walker.budget.entries
    walker.report.bytes_read = walker.budget.bytes
    return walker.report


def describe(places: list[Place], total: int, limit: int = 3) -> str:
    text = "; ".join(str(p) for p in places[:limit])
    if total > limit:
        text += f" (and {total - limit} more)"
    return text


class _Walker:
    def __init__(self, extensions: tuple[str, ...], budget: Budget) -> None:
        self.extensions = extensions
        self.budget = budget
        self.max_depth = budget.limits.max_depth
        self.report = Report()

    @property
    def done(self) -> bool:
        return bool(self.report.hits)

    def hit(self, where: Where, what: str) -> None:
        self.report.hits.append(Place(where, what))

    def skip(self, where: Where, why: str, bound: bool = False) -> None:
        """``where`` was not looked into, because of ``why``; ``bound``: a scan bound.

        Bound hits are always kept (the first few of each kind), so that the stage sees
        one even after many unopenable archives."""
        self.report.uninspected_count += 1
        kept = [p for p in self.report.uninspected if p.bound == bound]
        if len(kept) < MAX_REPORTED:
            self.report.uninspected.append(Place(where, f"not inspected, {why}", bound))

    def check_name(self, name: str, where: Where) -> None:
        ext = risky_extension(name, self.extensions)
        if ext:
            self.hit(where, f"file name ending in {ext}")

    # -- MIME -------------------------------------------------------------------------
    def entity(self, buf: bytes, start: int, end: int, depth: int, where: Where,
               default_type: str = "text/plain") -> None:
        self.budget.count_entry()
        ent = parse_entity(buf, start, end, default_type)
        for name in ent.names:
            self.check_name(name, where + (name,))
            if self.done:
                return
        if ent.maintype == "multipart" and ent.boundary:
            self.multipart(ent, depth, where)
            return
        here = where + (ent.names[0] if ent.names else f"({ent.content_type} part)",)
        message = ent.content_type in MESSAGE_TYPES or _is_message_name(ent.names)
        in_place = ent if message and ent.encoding in IDENTITY_ENCODINGS else None
        self.file(Content(ent.reader(), self.budget), depth, here, message, in_place)

    def multipart(self, ent: Entity, depth: int, where: Where) -> None:
        if depth >= self.max_depth:
            self.skip(where, f"MIME parts nested deeper than {self.max_depth}", bound=True)
            return
        child_type = "message/rfc822" if ent.content_type == "multipart/digest" else "text/plain"
        assert ent.boundary is not None
        for start, end in split_multipart(ent.buf, ent.body_start, ent.body_end, ent.boundary):
            self.entity(ent.buf, start, end, depth + 1, where, child_type)
            if self.done:
                return

    # -- files ----------------------------------------------------------------------------
    def file(self, content: Content, depth: int, where: Where, message: bool = False,
             in_place: Entity | None = None) -> None:
        """Any file: an executable?  Otherwise open it if it is an archive, or walk it if
        it is a ``message`` (``in_place``: an unencoded MIME body, walked without a copy).
        """
        try:
            kind = executable_kind(content.head)
            if kind:
                self.hit(where, kind)
                return
            container = container_kind(content.head(SNIFF_SIZE))
            if container is not None:
                self.archive(container, content, depth, where)
            elif message:
                self.attached_message(content, in_place, depth, where)
        except LimitReached as limit:
            if limit.whole_scan:
                raise
            self.skip(where, limit.what, bound=True)
        if content.error and not self.done:
            self.skip(where, f"cannot read ({content.error})")

    def attached_message(self, content: Content, in_place: Entity | None, depth: int,
                         where: Where) -> None:
        if depth >= self.max_depth:
            self.skip(where, f"attached messages nested deeper than {self.max_depth}",
                      bound=True)
            return
        if in_place is not None:
            self.entity(in_place.buf, in_place.body_start, in_place.body_end, depth + 1, where)
            return
        data = content.whole()
        self.entity(data, 0, len(data), depth + 1, where)

    def archive(self, kind: Container, content: Content, depth: int, where: Where) -> None:
        if not kind.openable:
            self.skip(where, f"{kind.value} archives cannot be opened")
            return
        if depth >= self.max_depth:
            self.skip(where, f"archives nested deeper than {self.max_depth}", bound=True)
            return
        data = content.whole()
        try:
            for member in members(kind, data, where[-1], self.budget.limits.max_entries):
                self.member(member, depth + 1, where + (member.name,))
                if self.done:
                    return
        except UnreadableArchive as err:
            self.skip(where, str(err))

    def member(self, member: Member, depth: int, where: Where) -> None:
        self.budget.count_entry()
        self.check_name(member.name, where)
        if self.done:
            return
        if member.encrypted:
            self.skip(where, "encrypted")
            return
        if member.opener is None:
            return
        try:
            reader = member.open()
        except UnreadableArchive as err:
            self.skip(where, str(err))
            return
        self.file(Content(reader, self.budget), depth, where, _is_message_name([member.name]))


def _is_message_name(names: list[str]) -> bool:
    return any(n.lower().rstrip(". ").endswith(".eml") for n in names)
