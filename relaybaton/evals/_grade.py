"""A grade, what a grader reads, and the ``Grader`` protocol every grader implements."""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import msgspec

from relaybaton.errors import ConfigError
from relaybaton.evals._dataset import EvalItem
from relaybaton.evals._trace import Trace

__all__ = ["Grade", "Grader", "Sample", "clamp_score"]


class Grade(msgspec.Struct, frozen=True, kw_only=True):
    """One grader's verdict on one sample: a score in 0..1, pass/fail, and why."""

    grader: str
    score: float
    passed: bool
    reason: str
    threshold: float = 1.0


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    """What a grader grades: the item (with its expectations) and the trace of its run.

    A live conversation graded in ``serve`` has an item with no expectations.
    """

    item: EvalItem
    trace: Trace
    repeat: int = 0


@runtime_checkable
class Grader(Protocol):
    """Grades a sample. ``needs_expected``: it cannot grade a live conversation."""

    @property
    def name(self) -> str:
        """The grader's name, unique in an evaluation."""
        ...

    @property
    def threshold(self) -> float:
        """The score at or above which a sample passes."""
        ...

    @property
    def needs_expected(self) -> bool:
        """Whether it needs an item's expected values (then it skips live traffic)."""
        ...

    async def grade(self, sample: Sample) -> Grade:
        """Grade one sample. Errors inside are a failing grade, not an exception."""
        ...


def clamp_score(value: float, where: str) -> float:
    """A score checked to be a number in 0..1 (``where`` names the grader)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"grader {where!r} gave {value!r}; a score is a number in 0..1")
    return min(1.0, max(0.0, float(value)))
