"""What the service watches of quality: satisfaction, online grades and declared thresholds.

``QualityWatch`` keeps bounded windows of the most recent model calls (latency, tokens,
cost), turn outcomes and users' ratings, reading the runtime's events as the other
observers do. The thresholds a flow declares (``[evals.thresholds]``: p95, error rate, cost
per 1K tokens, satisfaction, like the seed's p95 < 500 ms, errors < 1%, satisfaction >
4.5/5) are judged on these windows and reported as met or breached, on ``/metrics`` and on
``GET /v1/quality``. The p95 is of model calls (the part of a reply's latency the runtime
adds to and the supervisor acts on).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import final

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from relaybaton.actors import ModelCallEvent, Runtime
from relaybaton.evals import OnlineGrading, Thresholds
from relaybaton.runtime.messages import ReplyEvent

__all__ = ["QualityWatch"]


def _p95(values: Iterable[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, int(0.95 * len(ordered) + 0.5) - 1))]


@final
class QualityWatch(Collector):
    """Recent latency, errors, cost and ratings; thresholds judged on them."""

    def __init__(self, runtime: Runtime, *, window: int = 1000) -> None:
        self.thresholds = Thresholds()
        self.online: OnlineGrading | None = None
        self.latencies: deque[float] = deque(maxlen=window)
        self.tokens: deque[tuple[int, float]] = deque(maxlen=window)
        self.outcomes: deque[bool] = deque(maxlen=window)
        self.ratings: deque[int] = deque(maxlen=window)
        self.ratings_total = [0] * 6  # by rating 1..5 (index 0 unused)
        # Who answered each recent conversation last: the agent a rating grades (the owner
        # may have changed since, when the baton went back to a return address).
        self.answered: OrderedDict[str, str] = OrderedDict()
        self.max_answered = 100_000
        self._unsubscribe = runtime.conversations.subscribe(
            self._on_event, (ModelCallEvent, ReplyEvent)
        )

    def close(self) -> None:
        """Stop reading the runtime's events."""
        self._unsubscribe()

    def _on_event(self, conversation_id: str, event: msgspec.Struct) -> None:
        if isinstance(event, ModelCallEvent):
            self.latencies.append(event.latency_s)
            self.tokens.append((event.input_tokens + event.output_tokens, event.cost_usd))
        elif isinstance(event, ReplyEvent):
            self.outcomes.append(event.error is None)
            answered = self.answered
            answered[conversation_id] = event.agent
            answered.move_to_end(conversation_id)
            if len(answered) > self.max_answered:
                answered.popitem(last=False)

    def rate(self, rating: int) -> None:
        """Count one user's rating (1..5)."""
        self.ratings.append(rating)
        self.ratings_total[rating] += 1

    # --- the figures --------------------------------------------------------------------

    @property
    def satisfaction(self) -> float | None:
        """The mean recent rating (1..5), or None without ratings."""
        return sum(self.ratings) / len(self.ratings) if self.ratings else None

    def figures(self) -> dict[str, float | None]:
        """The watched figures now: p95 (ms), error rate, cost per 1K tokens, satisfaction."""
        tokens = sum(t for t, _ in self.tokens)
        cost = sum(c for _, c in self.tokens)
        p95 = _p95(self.latencies)
        outcomes = self.outcomes
        return {
            "p95_ms": p95 * 1000 if p95 is not None else None,
            "error_rate": (outcomes.count(False) / len(outcomes)) if outcomes else None,
            "cost_per_1k_tokens_usd": cost / tokens * 1000 if tokens else None,
            "satisfaction": self.satisfaction,
        }

    def judged(self) -> list[dict[str, object]]:
        """Each declared threshold with the figure now and whether it is met."""
        figures = self.figures()
        report: list[dict[str, object]] = []
        for name, limit in msgspec.structs.asdict(self.thresholds).items():
            if limit is None:
                continue
            value = figures[name]
            # Satisfaction is a floor; the others are ceilings.
            met = (
                None
                if value is None
                else (value >= limit if name == "satisfaction" else value <= limit)
            )
            state = "no data" if met is None else ("met" if met else "breached")
            report.append({"threshold": name, "limit": limit, "value": value, "state": state})
        return report

    def report(self) -> dict[str, object]:
        """The whole quality report of ``GET /v1/quality``."""
        online = self.online
        grading: dict[str, object] | None = None
        if online is not None:
            grading = {
                "sample": online.sample,
                "graded": online.graded,
                "queued": online.queued,
                "dropped": online.dropped,
                "failed": online.failed,
                "by_grader": {
                    name: {"count": int(n), "mean_score": total / n, "pass_rate": passed / n}
                    for name, (n, total, passed) in online.by_grader.items()
                    if n
                },
            }
        return {
            "satisfaction": self.satisfaction,
            "ratings": len(self.ratings),
            "figures": self.figures(),
            "thresholds": self.judged(),
            "online_grading": grading,
        }

    # --- Prometheus ---------------------------------------------------------------------

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        feedback = CounterMetricFamily(
            "relaybaton_feedback", "User ratings received, by rating (1-5).", labels=["rating"]
        )
        for rating in range(1, 6):
            feedback.add_metric([str(rating)], self.ratings_total[rating])
        yield feedback
        satisfaction = self.satisfaction
        if satisfaction is not None:
            yield GaugeMetricFamily(
                "relaybaton_satisfaction",
                "Mean of the most recent user ratings (1-5).",
                value=satisfaction,
            )
        online = self.online
        if online is not None:
            yield CounterMetricFamily(
                "relaybaton_online_grades", "Live conversations graded.", value=online.graded
            )
            yield CounterMetricFamily(
                "relaybaton_online_grades_dropped",
                "Live replies not graded because the grading queue was full.",
                value=online.dropped,
            )
            utility = GaugeMetricFamily(
                "relaybaton_online_grade_score", "Mean online grade by grader.", labels=["grader"]
            )
            for name, (n, total, _passed) in online.by_grader.items():
                if n:
                    utility.add_metric([name], total / n)
            yield utility
        met = GaugeMetricFamily(
            "relaybaton_threshold_met",
            "Whether a declared threshold is met (1) or breached (0); absent without data.",
            labels=["threshold"],
        )
        for judged in self.judged():
            if judged["state"] != "no data":
                met.add_metric([str(judged["threshold"])], 1.0 if judged["state"] == "met" else 0.0)
        yield met
