"""The statistics: Robinson's f(w) per token, Fisher's chi-square combining, points.

For each token with ``h`` ham and ``s`` spam occurrences out of ``H`` ham and ``S`` spam
messages learned, ``p = (s/S) / (s/S + h/H)``; Robinson's correction pulls rare tokens
toward ``X`` (0.5, "don't know"): ``f = (STRENGTH*X + n*p) / (STRENGTH + n)`` with
``n = h + s``.  The :data:`MAX_DISCRIMINATORS` tokens farthest from 0.5 (at least
:data:`MIN_DISTANCE` away) are combined twice with Fisher's method: once as evidence of
spam, once of ham; the indicator ``(S - H + 1) / 2`` is near 1 for spam, near 0 for ham
and near 0.5 when the evidence is weak *or* contradicts itself, which is what makes the
``unsure`` band honest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

STRENGTH = 0.45
X = 0.5
MIN_DISTANCE = 0.2
MAX_DISCRIMINATORS = 150
F_MIN, F_MAX = 1e-4, 1 - 1e-4

# Where the indicator lands on the SpamAssassin/rspamd points scale (piecewise linear):
# 0 -> HAM_POINTS, ham_cutoff -> 0, spam_cutoff -> SPAM_POINTS (SpamAssassin's own
# "is spam" line), 1 -> MAX_POINTS.
HAM_POINTS = -2.0
SPAM_POINTS = 5.0
MAX_POINTS = 15.0


@dataclass(frozen=True)
class TokenCounts:
    ham: int
    spam: int


def token_probability(counts: TokenCounts, nham: int, nspam: int) -> float:
    """Robinson's f(w) for one token."""
    ham_ratio = counts.ham / nham if nham else 0.0
    spam_ratio = counts.spam / nspam if nspam else 0.0
    n = counts.ham + counts.spam
    if ham_ratio + spam_ratio == 0:
        return X
    p = spam_ratio / (ham_ratio + spam_ratio)
    f = (STRENGTH * X + n * p) / (STRENGTH + n)
    return min(F_MAX, max(F_MIN, f))


def chi2q(x2: float, v: int) -> float:
    """P(chi-square with ``v`` (even) degrees of freedom >= ``x2``)."""
    m = x2 / 2.0
    term = math.exp(-m)
    total = term
    for i in range(1, v // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


def combine(probabilities: Iterable[float]) -> float:
    """Fisher/Robinson chi-square combining of token probabilities: 0 ham .. 1 spam."""
    chosen = [p for p in probabilities if abs(p - X) >= MIN_DISTANCE]
    chosen.sort(key=lambda p: -abs(p - X))
    chosen = chosen[:MAX_DISCRIMINATORS]
    if not chosen:
        return X
    ln_ham = sum(math.log(p) for p in chosen)  # small when tokens look spammy
    ln_spam = sum(math.log1p(-p) for p in chosen)
    n = len(chosen)
    hammy = 1.0 - chi2q(-2.0 * ln_ham, 2 * n)
    spammy = 1.0 - chi2q(-2.0 * ln_spam, 2 * n)
    return (spammy - hammy + 1.0) / 2.0


def strongest(scored: Iterable[tuple[str, float]], count: int = 6) -> list[tuple[str, float]]:
    """The tokens that weighed most, for the finding's detail."""
    return sorted(scored, key=lambda tp: -abs(tp[1] - X))[:count]


def to_points(indicator: float, ham_cutoff: float, spam_cutoff: float) -> float:
    """Map the indicator onto points (see the constants above)."""
    if indicator <= ham_cutoff:
        return HAM_POINTS * (1 - indicator / ham_cutoff)
    if indicator < spam_cutoff:
        return SPAM_POINTS * (indicator - ham_cutoff) / (spam_cutoff - ham_cutoff)
    span = 1.0 - spam_cutoff
    return SPAM_POINTS + (MAX_POINTS - SPAM_POINTS) * ((indicator - spam_cutoff) / span
                                                       if span else 1.0)
