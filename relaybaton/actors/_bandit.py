"""The learned router: a contextual bandit over task features that forgets old data.

For each (feature bucket, candidate) it keeps a decayed sum of graded utilities and of
weights: every new grade first multiplies the old sums by ``decay`` (0.999 keeps an
effective memory of ~1,000 grades per bucket), so a model that got worse is noticed and an
old verdict fades. Estimates shrink towards the candidate's estimate over all buckets of
the same domain, and that towards its global mean, so a bucket with three grades does not
decide alone (empirical-Bayes pooling with a prior worth ``prior_weight`` grades).

``choose`` picks the cheapest candidate whose estimate reaches ``target``; with
probability ``explore`` (seeded) it tries another one, so the estimates stay fresh.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import final

from relaybaton.actors._features import TaskFeatures

__all__ = ["LearnedRouter", "bucket_of"]


def bucket_of(features: TaskFeatures) -> tuple[str, int]:
    """The bucket a call's grade is kept in: its domain and a size band.

    The band is the bit length of the expected tokens (each band twice the last), which on
    graded data separated easy from hard prompts better than the heuristic complexity.
    """
    return features.domain, min(12, features.expected_tokens.bit_length())


@final
class _Stat:
    __slots__ = ("total", "weight")

    def __init__(self) -> None:
        self.total = 0.0
        self.weight = 0.0

    def add(self, value: float, decay: float) -> None:
        self.total = self.total * decay + value
        self.weight = self.weight * decay + 1.0

    def mean(self, prior: float, prior_weight: float) -> float:
        return (self.total + prior * prior_weight) / (self.weight + prior_weight)


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
    ) -> None:
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be within (0, 1], got {decay}")
        self.decay = decay
        self.prior_weight = prior_weight
        self.prior = prior
        self.explore = explore
        self._random = random.Random(seed)
        self._buckets: dict[tuple[tuple[str, int], str], _Stat] = {}
        self._domains: dict[tuple[str, str], _Stat] = {}
        self._global: dict[str, _Stat] = {}
        self.grades = 0

    def record(self, features: TaskFeatures, candidate: str, utility: float) -> None:
        """Learn one graded outcome (utility in [0, 1], e.g. 1.0 for a correct answer)."""
        self.grades += 1
        key = (bucket_of(features), candidate)
        stat = self._buckets.get(key)
        if stat is None:
            stat = self._buckets[key] = _Stat()
        stat.add(utility, self.decay)
        domain = (features.domain, candidate)
        stat = self._domains.get(domain)
        if stat is None:
            stat = self._domains[domain] = _Stat()
        stat.add(utility, self.decay)
        stat = self._global.get(candidate)
        if stat is None:
            stat = self._global[candidate] = _Stat()
        stat.add(utility, self.decay)

    def estimate(self, features: TaskFeatures, candidate: str) -> float:
        """The pooled utility estimate of ``candidate`` for calls like this one."""
        glob = self._global.get(candidate)
        mean = glob.mean(self.prior, self.prior_weight) if glob else self.prior
        domain = self._domains.get((features.domain, candidate))
        if domain is not None:
            mean = domain.mean(mean, self.prior_weight)
        bucket = self._buckets.get((bucket_of(features), candidate))
        if bucket is not None:
            mean = bucket.mean(mean, self.prior_weight)
        return mean

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
