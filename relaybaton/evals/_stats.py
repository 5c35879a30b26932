"""The statistics of an evaluation: intervals for pass rates, mean scores and differences.

- a pass rate's 95% interval is Wilson's score interval (right near 0 and 1 and for small
  n, where the normal approximation is not);
- a mean score's 95% interval is a percentile bootstrap (scores are bounded but far from
  normal: often a lump at 0 and another at 1);
- two variants on the same items are compared pair by pair (same item, same repeat), and
  the paired differences get a bootstrap interval; the verdict is ``better`` when the whole
  interval is above zero, ``worse`` when below, and ``no detectable difference`` otherwise
  (always with fewer than ``MIN_PAIRS`` pairs).

Every resampling is seeded, so a report is reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import msgspec

__all__ = [
    "Interval",
    "PairedDifference",
    "bootstrap_mean",
    "paired_difference",
    "percentile",
    "wilson",
]

Z95 = 1.959963984540054
# Below this many pairs no verdict is given: with five pairs all in one direction a sign
# test is still above 5% (two-sided), and a bootstrap of so few values is overconfident.
MIN_PAIRS = 6
BETTER, WORSE, SAME = "better", "worse", "no detectable difference"


class Interval(msgspec.Struct, frozen=True, kw_only=True):
    """An estimate with its 95% interval."""

    value: float
    low: float
    high: float


class PairedDifference(msgspec.Struct, frozen=True, kw_only=True):
    """B minus A over paired samples, its 95% interval and the verdict on B."""

    mean: float
    low: float
    high: float
    pairs: int
    verdict: str


def wilson(passed: int, n: int, z: float = Z95) -> Interval:
    """The pass rate ``passed / n`` with its Wilson score interval."""
    if n <= 0:
        return Interval(value=0.0, low=0.0, high=1.0)
    if not 0 <= passed <= n:
        raise ValueError(f"passed must be within 0..n, got {passed} of {n}")
    p = passed / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At p = 0 or 1 the bound equals p in exact arithmetic; rounding may put it a hair
    # inside, so the bounds are clamped around the estimate.
    low = min(p, max(0.0, centre - spread))
    high = max(p, min(1.0, centre + spread))
    return Interval(value=p, low=low, high=high)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by linear interpolation; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _bootstrap(values: Sequence[float], resamples: int, seed: int) -> tuple[float, float]:
    n = len(values)
    if n == 1 or min(values) == max(values):
        return values[0] if n == 1 else min(values), values[0] if n == 1 else max(values)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    return percentile(means, 0.025), percentile(means, 0.975)


def bootstrap_mean(values: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> Interval:
    """The mean of ``values`` with a percentile-bootstrap 95% interval."""
    if not values:
        return Interval(value=0.0, low=0.0, high=0.0)
    mean = sum(values) / len(values)
    low, high = _bootstrap(values, resamples, seed)
    return Interval(value=mean, low=min(low, mean), high=max(high, mean))


def paired_difference(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> PairedDifference:
    """``b - a`` pair by pair (the same item and repeat), with a verdict on ``b``."""
    if len(a) != len(b):
        raise ValueError(f"paired samples must have one length, got {len(a)} and {len(b)}")
    if not a:
        return PairedDifference(mean=0.0, low=0.0, high=0.0, pairs=0, verdict=SAME)
    differences = [y - x for x, y in zip(a, b, strict=True)]
    mean = sum(differences) / len(differences)
    low, high = _bootstrap(differences, resamples, seed)
    low, high = min(low, mean), max(high, mean)
    if len(differences) < MIN_PAIRS:
        verdict = SAME
    elif low > 0:
        verdict = BETTER
    elif high < 0:
        verdict = WORSE
    else:
        verdict = SAME
    return PairedDifference(mean=mean, low=low, high=high, pairs=len(a), verdict=verdict)
