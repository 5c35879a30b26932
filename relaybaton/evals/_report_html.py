"""The HTML report: one self-contained file (no scripts, no outside resources).

Per variant a summary table; per run of an item its transcript, its trace (model calls,
tools with their arguments and results, handoffs, approvals) and each grade with its reason.
Every string that came from a dataset, a model or a tool is escaped with ``html.escape``
before it is written: a reply holding ``<script>`` shows as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from relaybaton.actors import ModelCallEvent, ToolCallEvent
from relaybaton.evals._runner import ItemRun, VariantRun
from relaybaton.evals._summary import Comparison, GraderSummary, Summary
from relaybaton.runtime.messages import (
    ApprovalDecidedEvent,
    ApprovalRequestedEvent,
    HandoffEvent,
    ReplyEvent,
)

__all__ = ["html_report"]

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3;text-align:left}.pass{color:#176b2c}.fail{color:#b3261e;font-weight:600}
details{border:1px solid #ddd;border-radius:4px;margin:.3rem 0;padding:.3rem .6rem}
summary{cursor:pointer}pre{white-space:pre-wrap;background:#fafafa;padding:.4rem;margin:.2rem 0}
.trace li{font-family:ui-monospace,monospace;font-size:12px}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _summary_rows(rows: Sequence[GraderSummary]) -> str:
    out = []
    for g in rows:
        out.append(
            f"<tr><td>{_e(g.grader)}</td><td>{g.passed}/{g.runs}</td>"
            f"<td>{g.pass_rate.value:.1%} [{g.pass_rate.low:.1%}, {g.pass_rate.high:.1%}]</td>"
            f"<td>{g.mean_score.value:.3f} [{g.mean_score.low:.3f}, {g.mean_score.high:.3f}]"
            "</td></tr>"
        )
    return "".join(out)


def _summary(summary: Summary) -> str:
    return (
        f"<h2>Variant {_e(summary.variant)}</h2><table><tr><th>grader</th><th>passed</th>"
        "<th>pass rate [95% CI]</th><th>mean score [95% CI]</th></tr>"
        f"{_summary_rows([*summary.graders, summary.overall])}</table>"
        f"<p>{summary.runs} runs · cost ${summary.cost_usd_total:.6f} · latency p50 "
        f"{summary.latency_p50_s * 1000:.1f} ms, p95 {summary.latency_p95_s * 1000:.1f} ms · "
        f"{summary.turn_errors} turn error(s)</p>"
    )


def _event(event: object) -> str:
    if isinstance(event, ModelCallEvent):
        return (
            f"model {_e(event.agent)} → {_e(event.model)} {event.latency_s * 1000:.1f} ms "
            f"{event.input_tokens}→{event.output_tokens} tok ${event.cost_usd:.6f}"
        )
    if isinstance(event, ToolCallEvent):
        mark = "✗" if event.is_error else "✓"
        return (
            f"tool {_e(event.agent)} → {_e(event.tool)}({_e(event.arguments)}) {mark} "
            f"{_e(event.result[:300])}"
        )
    if isinstance(event, HandoffEvent):
        return f"{_e(event.action)} {_e(event.sender)} → {_e(event.target)} (epoch {event.epoch})"
    if isinstance(event, ApprovalRequestedEvent):
        return f"approval asked {_e(event.tool)}({_e(event.arguments)}) rule {_e(event.rule)}"
    if isinstance(event, ApprovalDecidedEvent):
        return f"approval {_e(event.decision)} by {_e(event.by)}"
    if isinstance(event, ReplyEvent):
        if event.error:
            return f"reply {_e(event.agent)} failed: {_e(event.error)}"
        return f"reply {_e(event.agent)}"
    return _e(type(event).__name__)


def _run(run: ItemRun) -> str:
    state = "pass" if run.passed else "fail"
    transcript = []
    for turn in run.trace.turns:
        transcript.append(f"<pre><b>user</b>: {_e(turn.user)}</pre>")
        transcript.extend(
            f"<pre><b>{_e(agent)}</b>: {_e(text)}</pre>"
            for agent, text in zip(turn.agents, turn.replies, strict=False)
        )
        if turn.error:
            transcript.append(f"<pre class='fail'>error: {_e(turn.error)}</pre>")
    grades = "".join(
        f"<tr><td>{_e(g.grader)}</td><td class='{'pass' if g.passed else 'fail'}'>"
        f"{'pass' if g.passed else 'fail'}</td><td>{g.score:.3f}</td><td>{g.threshold:g}</td>"
        f"<td>{_e(g.reason)}</td></tr>"
        for g in run.grades
    )
    trace = "".join(f"<li>{_event(e)}</li>" for e in run.trace.events)
    expected = run.item.expected
    shown = "" if expected is None else f"<p>expected: <code>{_e(expected)}</code></p>"
    return (
        f"<details><summary class='{state}'>{state} · {_e(run.item.id)} #{run.repeat} · "
        f"score {run.score:.3f} · owner {_e(run.trace.owner)}</summary>{shown}"
        f"<h4>Transcript</h4>{''.join(transcript)}"
        "<h4>Grades</h4><table><tr><th>grader</th><th>verdict</th><th>score</th>"
        f"<th>threshold</th><th>why</th></tr>{grades}</table>"
        f"<h4>Trace</h4><ul class='trace'>{trace}</ul></details>"
    )


def _comparison(comparison: Comparison) -> str:
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td>{d.mean:+.3f}</td><td>[{d.low:+.3f}, {d.high:+.3f}]</td>"
        f"<td>{d.pairs}</td><td>{_e(d.verdict)}</td></tr>"
        for name, d in comparison.differences.items()
    )
    return (
        f"<h2>{_e(comparison.b)} vs {_e(comparison.a)}</h2><table><tr><th>grader</th>"
        "<th>B - A</th><th>95% CI</th><th>pairs</th><th>verdict</th></tr>"
        f"{rows}</table>"
    )


def html_report(
    title: str,
    variants: Sequence[VariantRun],
    summaries: Sequence[Summary],
    comparison: Comparison | None = None,
) -> str:
    """The report as one HTML document."""
    body = [f"<h1>{_e(title)}</h1>"]
    body.extend(_summary(s) for s in summaries)
    if comparison is not None:
        body.append(_comparison(comparison))
    for variant in variants:
        body.append(f"<h2>Runs of {_e(variant.name)}</h2>")
        body.extend(_run(r) for r in variant.runs)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"{''.join(body)}</body></html>"
    )
