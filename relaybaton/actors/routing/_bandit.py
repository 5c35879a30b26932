"""The learned router: a contextual bandit over task features that forgets old data.

For each (feature bucket, candidate) it keeps a decayed sum of graded utilities and of
weights: every new grade first multiplies the old sums by ``decay`` (0.999 keeps an
effective memory of ~1,000 grades per bucket), so a model that got worse is noticed and an
old verdict fades. Estimates shrink towards the candidate's estimate over all buckets of
the same domain, and that towards its global mean, so a bucket with three grades does not
decide alone (empirical-Bayes pooling with a prior worth ``prior_weight`` grades).

Buckets are coarse (a domain and a size band), so every call in one gets the same estimate,
though within a band a longer word problem with more relations is harder. Each candidate
also keeps a decayed ridge regression of its grades on a few numeric features (the log of
the expected tokens, quantities written as words, the largest number's digits), and a
call's estimate moves by that slope times how far the call's features lie from the average
of the grades behind its estimate. The pooled mean still carries the level; the slope only
orders calls within it. (A regression alone, with the domain one-hot, would need a solve
over dozens of weights; the buckets pool by domain for free.)

Where the features say nothing beyond size, buckets and slopes still fit their noise and
misorder calls that size alone would order right. So the estimate starts from a length
prior (the same regression on size alone) and moves towards the full estimate by a trust
weight that each candidate learns from grades neither estimate had seen yet (see
``_Trust``): near 0 on such data, so the router ranks calls by size; near 1 where the
domain or the number words carry the signal.

``choose`` picks the cheapest candidate whose estimate reaches ``target``; with
probability ``explore`` (seeded) it tries another one, so the estimates stay fresh.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TypeVar, final

from relaybaton.actors.routing._features import TaskFeatures
from relaybaton.errors import ConfigError

__all__ = ["LearnedRouter", "bucket_of", "numeric_features"]


def bucket_of(features: TaskFeatures) -> tuple[str, int]:
    """The bucket a call's grade is kept in: its domain and a size band.

    The band is the bit length of the expected tokens (each band twice the last), which on
    graded data separated easy from hard prompts better than the heuristic complexity.
    """
    return features.domain, min(12, features.expected_tokens.bit_length())


Vector = tuple[float, ...]
K = TypeVar("K")


def numeric_features(features: TaskFeatures) -> Vector:
    """What the slopes see of a call: size (log2 of expected tokens), number words, magnitude."""
    return (
        math.log2(1 + features.expected_tokens),
        float(features.number_words),
        float(features.magnitude),
    )


@final
class _Stat:
    __slots__ = ("total", "weight", "xsum")

    def __init__(self) -> None:
        self.total = 0.0
        self.weight = 0.0
        self.xsum = [0.0, 0.0, 0.0]

    def add(self, value: float, decay: float, x: Vector) -> None:
        self.total = self.total * decay + value
        self.weight = self.weight * decay + 1.0
        xsum = self.xsum
        for i, v in enumerate(x):
            xsum[i] = xsum[i] * decay + v

    def center(self) -> Vector:
        """The average features of the grades kept here."""
        x0, x1, x2 = self.xsum
        weight = self.weight
        return (x0 / weight, x1 / weight, x2 / weight)

    def mean(self, prior: float, prior_weight: float) -> float:
        return (self.total + prior * prior_weight) / (self.weight + prior_weight)


def _stat(table: dict[K, _Stat], key: K) -> _Stat:
    stat = table.get(key)
    if stat is None:
        stat = table[key] = _Stat()
    return stat


@final
class _Slope:
    """A decayed ridge regression of grades on ``(1, *numeric_features)``; solved lazily.

    The same normal equations, cut to their first two rows and columns, are the regression
    on size alone: the length prior, which costs no extra bookkeeping.
    """

    __slots__ = ("_a", "_b", "_prior", "_ridge", "_weights")

    def __init__(self, ridge: float) -> None:
        size = 4
        self._a = [[0.0] * size for _ in range(size)]
        self._b = [0.0] * size
        self._ridge = ridge
        self._weights: list[float] | None = None
        self._prior: list[float] | None = None

    def add(self, x: Vector, value: float, decay: float) -> None:
        row = (1.0, *x)
        a, b = self._a, self._b
        for i, xi in enumerate(row):
            b[i] = b[i] * decay + xi * value
            ai = a[i]
            for j, xj in enumerate(row):
                ai[j] = ai[j] * decay + xi * xj
        self._weights = self._prior = None

    def delta(self, x: Vector, center: Vector) -> float:
        """The change in expected grade from ``center`` to ``x``."""
        weights = self._weights
        if weights is None:
            weights = self._weights = self._solve(4)
        # Written out: this runs for every candidate of every routed call.
        return (
            weights[1] * (x[0] - center[0])
            + weights[2] * (x[1] - center[1])
            + weights[3] * (x[2] - center[2])
        )

    def prior(self, x: Vector) -> float:
        """The expected grade from size alone."""
        weights = self._prior
        if weights is None:
            weights = self._prior = self._solve(2)
        return weights[0] + weights[1] * x[0]

    def _solve(self, size: int) -> list[float]:
        # Gaussian elimination on the leading size x size normal equations. They are positive
        # definite (a Gram matrix plus the ridge on the slopes and a speck on the intercept),
        # so no pivoting is needed.
        m = [[*self._a[i][:size], self._b[i]] for i in range(size)]
        for i in range(size):
            m[i][i] += self._ridge if i else 1e-9
        for col in range(size):
            pivot = m[col]
            for row in m[col + 1 :]:
                factor = row[col] / pivot[col]
                for j in range(col, size + 1):
                    row[j] -= factor * pivot[j]
        weights = [0.0] * size
        for i in reversed(range(size)):
            rest = sum(m[i][j] * weights[j] for j in range(i + 1, size))
            weights[i] = (m[i][size] - rest) / m[i][i]
        return weights


@final
class _Trust:
    """How far to move from the length prior towards the full estimate, learned online.

    Before a grade is learned, both estimates predict it (so neither has seen it, as in
    cross-validation), and the weight is the least-squares fit of the grade's residual from
    the prior on the full estimate's departure from it: ``sum(r * d) / sum(d * d)``, kept
    within [0, 1]. Features that add nothing beyond size leave a weight near 0, so the
    router ranks calls like the length prior instead of below it.
    """

    __slots__ = ("_dd", "_rd")

    def __init__(self) -> None:
        self._rd = 0.0
        self._dd = 0.0

    def add(self, residual: float, departure: float, decay: float) -> None:
        self._rd = self._rd * decay + residual * departure
        self._dd = self._dd * decay + departure * departure

    @property
    def weight(self) -> float:
        if self._dd <= 0.0:
            return 0.0
        return min(1.0, max(0.0, self._rd / self._dd))


@final
class LearnedRouter:
    """Estimates each candidate's utility per feature bucket from graded outcomes."""

    def __init__(
        self,
        *,
        decay: float = 0.999,
        prior_weight: float = 4.0,
        prior: float = 0.5,
        explore: float = 0.02,
        seed: int = 0,
        ridge: float = 1.0,
        trust: float | None = None,
    ) -> None:
        if not 0.0 < decay <= 1.0:
            raise ConfigError(f"decay must be within (0, 1], got {decay}")
        if trust is not None and not 0.0 <= trust <= 1.0:
            raise ConfigError(f"trust must be within [0, 1] or None (learned), got {trust}")
        self.decay = decay
        self.prior_weight = prior_weight
        self.prior = prior
        self.explore = explore
        self._random = random.Random(seed)
        self._buckets: dict[tuple[tuple[str, int], str], _Stat] = {}
        self._domains: dict[tuple[str, str], _Stat] = {}
        self._global: dict[str, _Stat] = {}
        self._slopes: dict[str, _Slope] = {}
        self._trust: dict[str, _Trust] = {}
        self.ridge = ridge
        self.fixed_trust = trust
        self.grades = 0

    def record(self, features: TaskFeatures, candidate: str, utility: float) -> None:
        """Learn one graded outcome (utility in [0, 1], e.g. 1.0 for a correct answer)."""
        self.grades += 1
        x = numeric_features(features)
        decay = self.decay
        slope = self._slopes.get(candidate)
        if slope is None:
            slope = self._slopes[candidate] = _Slope(self.ridge)
            trust = self._trust[candidate] = _Trust()
        else:
            trust = self._trust[candidate]
            prior = slope.prior(x)
            full = self._full(features, candidate, x, slope)
            trust.add(utility - prior, full - prior, decay)
        _stat(self._buckets, (bucket_of(features), candidate)).add(utility, decay, x)
        _stat(self._domains, (features.domain, candidate)).add(utility, decay, x)
        _stat(self._global, candidate).add(utility, decay, x)
        slope.add(x, utility, decay)

    def estimate(self, features: TaskFeatures, candidate: str) -> float:
        """The utility estimate of ``candidate`` for calls like this one, in [0, 1]."""
        slope = self._slopes.get(candidate)
        if slope is None:
            return self.prior
        x = numeric_features(features)
        value = slope.prior(x)
        weight = self.trust(candidate)
        if weight:
            value += weight * (self._full(features, candidate, x, slope) - value)
        return min(1.0, max(0.0, value))

    def trust(self, candidate: str) -> float:
        """How much of the way from the length prior to the full estimate ``candidate`` goes."""
        if self.fixed_trust is not None:
            return self.fixed_trust
        trust = self._trust.get(candidate)
        return 0.0 if trust is None else trust.weight

    def _full(self, features: TaskFeatures, candidate: str, x: Vector, slope: _Slope) -> float:
        """The pooled bucket mean moved by the feature slopes (unclamped)."""
        glob = self._global[candidate]
        mean = glob.mean(self.prior, self.prior_weight)
        nearest = glob
        domain = self._domains.get((features.domain, candidate))
        if domain is not None:
            mean = domain.mean(mean, self.prior_weight)
            nearest = domain
        bucket = self._buckets.get((bucket_of(features), candidate))
        if bucket is not None:
            mean = bucket.mean(mean, self.prior_weight)
            nearest = bucket
        return mean + slope.delta(x, nearest.center())

    def gain(self, features: TaskFeatures, strong: str, weak: str) -> float:
        """How much more utility ``strong`` is expected to give than ``weak`` here."""
        return self.estimate(features, strong) - self.estimate(features, weak)

    def choose(self, features: TaskFeatures, by_price: Sequence[str], target: float) -> str:
        """The cheapest of ``by_price`` (cheapest first) expected to reach ``target``."""
        if not by_price:
            raise ValueError("choose() needs at least one candidate")
        if self.explore and len(by_price) > 1 and self._random.random() < self.explore:
            return self._random.choice(list(by_price))
        best, best_value = by_price[-1], -1.0
        for name in by_price:
            value = self.estimate(features, name)
            if value >= target:
                return name
            if value > best_value:
                best, best_value = name, value
        return best
