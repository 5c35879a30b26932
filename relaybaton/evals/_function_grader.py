"""The Python function grader: ``file.py:function`` given the sample, sync or async.

The function returns a score (a number in 0..1 or a bool), a ``(score, reason)`` pair, or a
``Grade``. An exception inside it is a failing grade with the exception as its reason (and
its traceback in the log), so one broken grader cannot stop an evaluation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import final

import structlog

from relaybaton.errors import ConfigError
from relaybaton.evals._grade import Grade, Sample, clamp_score

__all__ = ["FunctionGrader"]

_log = structlog.get_logger("relaybaton.evals")


@final
class FunctionGrader:
    """A grader that is a Python function of the ``Sample``."""

    def __init__(
        self,
        name: str,
        function: Callable[[Sample], object],
        *,
        threshold: float = 1.0,
        needs_expected: bool = False,
    ) -> None:
        self.name = name
        self.function = function
        self.threshold = threshold
        self.needs_expected = needs_expected

    async def grade(self, sample: Sample) -> Grade:
        try:
            value = self.function(sample)
            if inspect.isawaitable(value):
                value = await value
            score, reason = self._read(value)
        except Exception as exc:  # a user's grader: its failure is a grade, not a crash
            _log.warning("grader_failed", grader=self.name, exc_info=exc)
            return Grade(
                grader=self.name,
                score=0.0,
                passed=False,
                reason=f"the grader raised {type(exc).__name__}: {exc}",
                threshold=self.threshold,
            )
        return Grade(
            grader=self.name,
            score=score,
            passed=score >= self.threshold,
            reason=reason,
            threshold=self.threshold,
        )

    def _read(self, value: object) -> tuple[float, str]:
        if isinstance(value, Grade):
            return clamp_score(value.score, self.name), value.reason
        if isinstance(value, tuple) and len(value) == 2:
            return clamp_score(value[0], self.name), str(value[1])
        if isinstance(value, int | float):
            return clamp_score(value, self.name), f"{self.function.__name__} gave {value!r}"
        raise ConfigError(
            f"grader {self.name!r} returned {type(value).__name__}; return a score in 0..1, "
            "a bool, a (score, reason) pair or a Grade"
        )
