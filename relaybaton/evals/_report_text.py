"""The terminal report: a live progress line, the summary table, the comparison table."""

from __future__ import annotations

from typing import TextIO, final

from relaybaton.evals._runner import ItemRun
from relaybaton.evals._stats import Interval
from relaybaton.evals._summary import Comparison, GraderSummary, Summary

__all__ = ["Progress", "format_comparison", "format_summary"]


@final
class Progress:
    """Shows runs as they finish: one rewritten line on a terminal, plain lines otherwise."""

    def __init__(self, out: TextIO, total: int, *, live: bool | None = None) -> None:
        self.out = out
        self.total = total
        self.live = out.isatty() if live is None else live
        self.done = 0
        self.passed = 0

    def __call__(self, run: ItemRun) -> None:
        self.done += 1
        self.passed += run.passed
        failed = self.done - self.passed
        if self.live:
            width = 24
            filled = int(width * self.done / max(1, self.total))
            bar = "█" * filled + "·" * (width - filled)
            self.out.write(
                f"\r[{run.variant}] {bar} {self.done}/{self.total}  "
                f"pass {self.passed}  fail {failed}"
            )
            if self.done == self.total:
                self.out.write("\n")
        else:
            mark = "pass" if run.passed else "FAIL"
            failing = [g.grader for g in run.grades if not g.passed]
            why = f" ({', '.join(failing)})" if failing else ""
            self.out.write(
                f"[{run.variant}] {self.done}/{self.total} {mark} {run.item.id}#{run.repeat}{why}\n"
            )
        self.out.flush()


def _rate(interval: Interval) -> str:
    return f"{interval.value:6.1%} [{interval.low:.0%}, {interval.high:.0%}]"


def _score(interval: Interval) -> str:
    return f"{interval.value:.3f} [{interval.low:.2f}, {interval.high:.2f}]"


def _row(g: GraderSummary) -> str:
    return (
        f"  {g.grader[:36]:<36} {g.passed:>5}/{g.runs:<5} {_rate(g.pass_rate):<22} "
        f"{_score(g.mean_score)}"
    )


def format_summary(summary: Summary) -> str:
    """The summary table of one variant (pass rates with Wilson intervals, scores, cost)."""
    lines = [
        f"variant {summary.variant}: {summary.runs} runs in {summary.wall_s:.2f} s",
        f"  {'grader':<36} {'passed':>11} {'pass rate [95% CI]':<22} mean score [95% CI]",
    ]
    lines.extend(_row(g) for g in summary.graders)
    lines.append(_row(summary.overall))
    lines.append(
        f"  cost ${summary.cost_usd_total:.6f} total, ${summary.cost_usd_mean:.6f} per run · "
        f"latency p50 {summary.latency_p50_s * 1000:.1f} ms, p95 "
        f"{summary.latency_p95_s * 1000:.1f} ms · {summary.turn_errors} turn error(s)"
    )
    return "\n".join(lines)


def format_comparison(comparison: Comparison, a: Summary, b: Summary) -> str:
    """B against A per grader: the paired score difference, its interval, the verdict."""
    lines = [
        f"{comparison.b} vs {comparison.a} (paired by item and repeat)",
        f"  {'grader':<36} {'A score':>8} {'B score':>8} {'B - A [95% CI]':<26} verdict",
    ]
    for name, diff in comparison.differences.items():
        left, right = a.grader(name), b.grader(name)
        sa = f"{left.mean_score.value:.3f}" if left else "-"
        sb = f"{right.mean_score.value:.3f}" if right else "-"
        ci = f"{diff.mean:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}]"
        lines.append(f"  {name[:36]:<36} {sa:>8} {sb:>8} {ci:<26} {diff.verdict}")
    lines.append(
        f"  cost per run   A ${a.cost_usd_mean:.6f}   B ${b.cost_usd_mean:.6f}\n"
        f"  latency p50    A {a.latency_p50_s * 1000:.1f} ms   B {b.latency_p50_s * 1000:.1f} ms\n"
        f"  latency p95    A {a.latency_p95_s * 1000:.1f} ms   B {b.latency_p95_s * 1000:.1f} ms"
    )
    return "\n".join(lines)
