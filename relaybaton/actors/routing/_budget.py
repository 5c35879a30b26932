"""A budget checked before the call, with the call's expected cost.

Checking only what was spent lets the call that crosses the limit run, and every call
after a step-down too, until the spend is over: a budget of $0.12 could end at $0.17.
Here each call is checked with its expected cost (its expected input tokens at the
candidate's input price, plus an expected answer at its output price): a call that would
pass a limit goes to the cheapest candidate if that one fits, and is refused otherwise. So a
budget is never overshot by more than one call's estimate is off.
"""

from __future__ import annotations

from collections.abc import Sequence

from relaybaton.actors.routing._features import TaskFeatures

__all__ = ["EXPECTED_ANSWER_TOKENS", "expected_cost", "expected_tokens", "first_overshoot"]

# An answer's expected length when the request sets no max_output_tokens.
EXPECTED_ANSWER_TOKENS = 256


def expected_tokens(features: TaskFeatures) -> int:
    """The call's expected tokens, input and answer."""
    return features.expected_tokens + EXPECTED_ANSWER_TOKENS


def expected_cost(price_in_per_1k: float, price_out_per_1k: float, features: TaskFeatures) -> float:
    """The call's expected cost in dollars on a candidate with these prices."""
    return (
        features.expected_tokens * price_in_per_1k + EXPECTED_ANSWER_TOKENS * price_out_per_1k
    ) / 1000


def first_overshoot(checks: Sequence[tuple[float, float | None, str]]) -> str | None:
    """The first budget that ``(used + expected, limit, label)`` passes, or None."""
    for after, limit, label in checks:
        if limit is not None and after > limit:
            return label
    return None
