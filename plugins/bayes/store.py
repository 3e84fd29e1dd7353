"""Token counts in the database: bulk training and cached reads.

Training takes the ``bayes_state`` row's lock first (``SELECT ... FOR UPDATE`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so concurrent trainers on several nodes
serialise instead of deadlocking on token rows, and the learned-message check sees a
stable table.  Token counts change with one ``INSERT ... ON CONFLICT DO UPDATE`` per
batch (``executemany``), tokens in sorted order.

Reading counts is a plain query; the classifier keeps what it derives from them per
process, tagged with the state's revision (:mod:`ie_plugins.bayes.probabilities`).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ie_core.changes import Cached, ChangeCounters, track
from ie_core.db import Database
from ie_plugins.bayes.models import STATE_ROW, BayesMessage, BayesState, BayesToken
from ie_plugins.bayes.scoring import TokenCounts

COUNTER = "bayes"
"""The change counter of the classifier's totals (:mod:`ie_core.changes`): a learn changes
the state row, so the totals are read again."""
track(BayesState, COUNTER)

CHUNK = 900  # parameters per IN (...) query


@dataclass(frozen=True)
class Totals:
    nham: int
    nspam: int
    revision: int


@dataclass(frozen=True)
class Sample:
    """One message to train: its digest, label and token hashes."""

    digest: str
    spam: bool
    tokens: Sequence[int]


@dataclass
class TrainResult:
    changed: int = 0  # messages whose counts were added (or, for forget, removed)
    unchanged: int = 0  # already learned with that label (or, for forget, not learned)


def pack(tokens: Iterable[int]) -> bytes:
    return array("q", sorted(tokens)).tobytes()


def unpack(blob: bytes) -> list[int]:
    values = array("q")
    values.frombytes(blob)
    return values.tolist()


class TokenStore:
    def __init__(self, db: Database, counters: ChangeCounters | None = None) -> None:
        self._db = db
        self._totals = None if counters is None else Cached(counters, COUNTER, self._read_totals)

    # -- reading ------------------------------------------------------------------------
    def totals(self, session: Session | None = None) -> Totals:
        """The totals (cached when the store was given the change counters)."""
        if session is None:
            return self._read_totals() if self._totals is None else self._totals.get()
        row = session.get(BayesState, STATE_ROW)
        if row is None:
            return Totals(0, 0, 0)
        return Totals(row.nham, row.nspam, row.revision)

    def _read_totals(self) -> Totals:
        with self._db.reading() as s:
            return self.totals(s)

    def counts(self, tokens: Sequence[int]) -> dict[int, TokenCounts]:
        """The counts of ``tokens`` that were ever learned (absent tokens are left out)."""
        wanted = sorted(set(tokens))
        found: dict[int, TokenCounts] = {}
        with self._db.reading() as s:
            for start in range(0, len(wanted), CHUNK):
                rows = s.execute(select(BayesToken.token, BayesToken.ham_count,
                                        BayesToken.spam_count)
                                 .where(BayesToken.token.in_(wanted[start:start + CHUNK])))
                for token, ham, spam in rows:
                    if ham or spam:
                        found[token] = TokenCounts(ham, spam)
        return found

    def token_count(self) -> int:
        with self._db.session() as s:
            return int(s.scalar(select(func.count()).select_from(BayesToken)) or 0)

    # -- training -----------------------------------------------------------------------
    def learn(self, samples: Sequence[Sample], now: datetime) -> TrainResult:
        """Count each sample under its label; a message learned with the other label
        is moved (its old counts are subtracted first)."""
        result = TrainResult()
        with self._db.session() as s:
            state = self._lock_state(s)
            known = self._known(s, [x.digest for x in samples])
            deltas: dict[int, list[int]] = {}
            for sample in samples:
                before = known.get(sample.digest)
                if before is not None and before[0] == sample.spam:
                    result.unchanged += 1
                    continue
                if before is not None:
                    _add(deltas, before[1], before[0], -1)
                    _count(state, before[0], -1)
                    s.execute(delete(BayesMessage).where(BayesMessage.digest == sample.digest))
                _add(deltas, sample.tokens, sample.spam, +1)
                _count(state, sample.spam, +1)
                s.add(BayesMessage(digest=sample.digest, spam=sample.spam,
                                   tokens=pack(sample.tokens), learned_at=now))
                known[sample.digest] = (sample.spam, list(sample.tokens))
                result.changed += 1
            self._apply(s, deltas)
            if result.changed:
                state.revision += 1
        return result

    def forget(self, samples: Sequence[Sample]) -> TrainResult:
        """Subtract exactly what learning each sample (with that label) added."""
        result = TrainResult()
        with self._db.session() as s:
            state = self._lock_state(s)
            known = self._known(s, [x.digest for x in samples])
            deltas: dict[int, list[int]] = {}
            for sample in samples:
                before = known.pop(sample.digest, None)
                if before is None or before[0] != sample.spam:
                    result.unchanged += 1
                    continue
                _add(deltas, before[1], sample.spam, -1)
                _count(state, sample.spam, -1)
                s.execute(delete(BayesMessage).where(BayesMessage.digest == sample.digest))
                result.changed += 1
            self._apply(s, deltas)
            if result.changed:
                state.revision += 1
        return result

    def _lock_state(self, s: Session) -> BayesState:
        if self._db.is_sqlite:
            ins: Any = sqlite.insert(BayesState)
        else:
            ins = postgresql.insert(BayesState)
        s.execute(ins.values(id=STATE_ROW, nham=0, nspam=0, revision=0)
                  .on_conflict_do_nothing(index_elements=["id"]))
        return s.scalars(select(BayesState).where(BayesState.id == STATE_ROW)
                         .with_for_update()).one()

    def _known(self, s: Session, digests: Sequence[str]) -> dict[str, tuple[bool, list[int]]]:
        known: dict[str, tuple[bool, list[int]]] = {}
        unique = sorted(set(digests))
        for start in range(0, len(unique), CHUNK):
            rows = s.execute(select(BayesMessage.digest, BayesMessage.spam, BayesMessage.tokens)
                             .where(BayesMessage.digest.in_(unique[start:start + CHUNK])))
            for digest, spam, blob in rows:
                known[digest] = (spam, unpack(blob))
        return known

    def _apply(self, s: Session, deltas: dict[int, list[int]]) -> None:
        rows = [{"token": t, "ham_count": d[0], "spam_count": d[1]}
                for t, d in sorted(deltas.items()) if d[0] or d[1]]
        if not rows:
            return
        ins: Any = (sqlite.insert(BayesToken) if self._db.is_sqlite
                    else postgresql.insert(BayesToken))
        upsert = ins.on_conflict_do_update(
            index_elements=["token"],
            set_={"ham_count": BayesToken.ham_count + ins.excluded.ham_count,
                  "spam_count": BayesToken.spam_count + ins.excluded.spam_count})
        s.execute(upsert, rows)
        lowered = [r["token"] for r in rows if r["ham_count"] < 0 or r["spam_count"] < 0]
        for start in range(0, len(lowered), CHUNK):
            s.execute(delete(BayesToken).where(
                BayesToken.token.in_(lowered[start:start + CHUNK]),
                BayesToken.ham_count <= 0, BayesToken.spam_count <= 0))


def _add(deltas: dict[int, list[int]], tokens: Iterable[int], spam: bool, sign: int) -> None:
    index = 1 if spam else 0
    for token in tokens:
        entry = deltas.get(token)
        if entry is None:
            entry = deltas[token] = [0, 0]
        entry[index] += sign


def _count(state: BayesState, spam: bool, sign: int) -> None:
    if spam:
        state.nspam += sign
    else:
        state.nham += sign

