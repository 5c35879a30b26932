"""Summaries of a variant's runs and comparisons between two variants.

A summary has, per grader and overall, the pass rate with its Wilson interval and the mean
score with its bootstrap interval, and for the variant the cost and the p50/p95 latency of
its turns. "Overall" passes a run when every grader passed it, and scores it by the mean of
its grades. A comparison pairs runs by (item, repeat) and gives, per grader and overall,
the paired difference of scores (B − A) with its interval and verdict.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from relaybaton.evals._runner import ItemRun, VariantRun
from relaybaton.evals._stats import (
    Interval,
    PairedDifference,
    bootstrap_mean,
    paired_difference,
    percentile,
    wilson,
)

__all__ = ["Comparison", "GraderSummary", "Summary", "compare", "summarize"]

OVERALL = "overall"


class GraderSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One grader's (or ``overall``'s) results over a variant's runs."""

    grader: str
    runs: int
    passed: int
    pass_rate: Interval
    mean_score: Interval


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """A variant's results: per grader, overall, cost, latency and throughput."""

    variant: str
    runs: int
    graders: tuple[GraderSummary, ...]
    overall: GraderSummary
    cost_usd_total: float
    cost_usd_mean: float
    latency_p50_s: float
    latency_p95_s: float
    turn_errors: int
    wall_s: float

    def grader(self, name: str) -> GraderSummary | None:
        """The summary of grader ``name`` (``overall`` for all of them)."""
        if name == OVERALL:
            return self.overall
        return next((g for g in self.graders if g.grader == name), None)


def _grader_summary(name: str, scores: Sequence[float], passes: Sequence[bool]) -> GraderSummary:
    passed = sum(passes)
    return GraderSummary(
        grader=name,
        runs=len(scores),
        passed=passed,
        pass_rate=wilson(passed, len(passes)),
        mean_score=bootstrap_mean(list(scores)),
    )


def _names(runs: Sequence[ItemRun], declared: Sequence[str] = ()) -> list[str]:
    names: list[str] = list(declared)
    for run in runs:
        for grade in run.grades:
            if grade.grader not in names:
                names.append(grade.grader)
    return names


def summarize(variant: VariantRun) -> Summary:
    """The summary of every run of ``variant``."""
    runs = variant.runs
    graders = []
    for name in _names(runs, variant.graders):
        grades = [g for r in runs for g in r.grades if g.grader == name]
        if not grades:
            continue  # scoped to items this dataset does not have
        graders.append(_grader_summary(name, [g.score for g in grades], [g.passed for g in grades]))
    latencies = [t.latency_s for r in runs for t in r.trace.turns]
    cost = sum(r.trace.cost_usd for r in runs)
    return Summary(
        variant=variant.name,
        runs=len(runs),
        graders=tuple(graders),
        overall=_grader_summary(OVERALL, [r.score for r in runs], [r.passed for r in runs]),
        cost_usd_total=cost,
        cost_usd_mean=cost / len(runs) if runs else 0.0,
        latency_p50_s=percentile(latencies, 0.5),
        latency_p95_s=percentile(latencies, 0.95),
        turn_errors=sum(len(r.trace.errors) for r in runs),
        wall_s=variant.wall_s,
    )


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    """Variant B against variant A on the same items: score differences per grader."""

    a: str
    b: str
    differences: dict[str, PairedDifference]
    pass_rate_differences: dict[str, PairedDifference]


def _scores(run: ItemRun, grader: str) -> tuple[float, float] | None:
    if grader == OVERALL:
        return run.score, 1.0 if run.passed else 0.0
    grade = next((g for g in run.grades if g.grader == grader), None)
    return None if grade is None else (grade.score, 1.0 if grade.passed else 0.0)


def compare(a: VariantRun, b: VariantRun) -> Comparison:
    """B − A per grader (and overall), over the runs both have (same item, same repeat)."""
    by_key = {(r.item.id, r.repeat): r for r in a.runs}
    pairs = [(by_key[(r.item.id, r.repeat)], r) for r in b.runs if (r.item.id, r.repeat) in by_key]
    differences: dict[str, PairedDifference] = {}
    passing: dict[str, PairedDifference] = {}
    for name in [*_names(a.runs, a.graders), OVERALL]:
        xs: list[float] = []
        ys: list[float] = []
        px: list[float] = []
        py: list[float] = []
        for left, right in pairs:
            x, y = _scores(left, name), _scores(right, name)
            if x is None or y is None:
                continue
            xs.append(x[0])
            ys.append(y[0])
            px.append(x[1])
            py.append(y[1])
        differences[name] = paired_difference(xs, ys)
        passing[name] = paired_difference(px, py)
    return Comparison(a=a.name, b=b.name, differences=differences, pass_rate_differences=passing)
