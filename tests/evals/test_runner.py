"""Running datasets through a runtime: turns, approvals, traces and trace graders."""

from __future__ import annotations

import pytest

from relaybaton.evals import (
    ApprovalRequiredGrader,
    EvalItem,
    FinalOwnerGrader,
    HandoffGrader,
    LimitGrader,
    NoToolErrorGrader,
    StringGrader,
    ToolCalledGrader,
    run_dataset,
    summarize,
)
from tests.evals.conftest import runtime_factory

pytestmark = pytest.mark.anyio

ITEMS = [
    EvalItem(id="hello", messages=("hi there",), expected="Hello"),
    EvalItem(id="small", messages=("I want a refund of $40",)),
    EvalItem(id="large", messages=("I want a refund of $150",)),
    EvalItem(id="two-turns", messages=("hi", "now a refund of $20 please")),
]

GRADERS = [
    ApprovalRequiredGrader("refund_over_100_waits", "issue_refund", when="amount > 100"),
    HandoffGrader("no_handoff_for_greeting", "refund", happened=False),
    NoToolErrorGrader("no_tool_error"),
]


async def test_every_item_runs_in_its_own_conversation_and_is_graded_on_its_trace() -> None:
    result = await run_dataset(runtime_factory(), ITEMS, GRADERS, concurrency=4)
    runs = {r.item.id: r for r in result.runs}
    assert [r.item.id for r in result.runs] == [i.id for i in ITEMS]
    assert len({r.trace.conversation_id for r in result.runs}) == 4
    assert runs["hello"].trace.reply == "Hello! You said: hi there"
    assert runs["large"].trace.reply == "Done: refunded $150 on A1"
    # The approval policy approved the large refund through Runtime.decide, as a person would.
    [decision] = runs["large"].trace.decisions()
    assert (decision.decision, decision.by) == ("approve", "relaybaton eval")
    assert runs["large"].trace.owner == "refund"
    assert runs["two-turns"].trace.turns[0].replies == ("Hello! You said: hi",)
    assert runs["two-turns"].trace.reply == "Done: refunded $20 on A1"
    grades = {r.item.id: {g.grader: g.passed for g in r.grades} for r in result.runs}
    assert all(grades[i]["refund_over_100_waits"] for i in grades)
    assert grades["hello"]["no_handoff_for_greeting"]
    assert not grades["small"]["no_handoff_for_greeting"]


async def test_a_large_refund_that_did_not_wait_for_a_person_fails_the_business_rule() -> None:
    # The same flow with its approval rule lost: the reply is as polite, the trace is not.
    result = await run_dataset(runtime_factory(rule=False), ITEMS, GRADERS)
    by_item = {r.item.id: r.grades[0] for r in result.runs}
    assert not by_item["large"].passed
    assert "ran without a person's approval" in by_item["large"].reason
    assert "amount" in by_item["large"].reason
    assert by_item["small"].passed  # $40 is under the rule: it need not wait


async def test_waiting_policy_leaves_the_conversation_parked_and_the_rule_holds() -> None:
    result = await run_dataset(
        runtime_factory(), [ITEMS[2]], [GRADERS[0], FinalOwnerGrader("owner", "refund")],
        approvals="wait",
    )  # fmt: skip
    [run] = result.runs
    assert run.trace.turns[0].error == "unfinished"
    assert run.trace.waiting_for_a_person
    assert run.passed
    assert "1 still waiting for a person" in run.grades[0].reason


async def test_a_rejected_refund_never_ran_so_the_rule_holds() -> None:
    result = await run_dataset(runtime_factory(), [ITEMS[2]], [GRADERS[0]], approvals="reject")
    [run] = result.runs
    assert run.passed
    assert run.trace.decisions()[0].decision == "reject"


async def test_tool_and_limit_graders_read_arguments_counts_and_cost() -> None:
    graders = [
        ToolCalledGrader("refunds_large", "issue_refund", when="amount >= 100"),
        ToolCalledGrader("never_refunds_500", "issue_refund", when="amount == 500", called=False),
        LimitGrader("calls", "max_model_calls", 3),
        LimitGrader("handoffs", "max_handoffs", 0),
        LimitGrader("cost", "max_cost_usd", 0.0025),
        LimitGrader("latency", "max_latency_s", 60),
        FinalOwnerGrader("owner", "refund"),
    ]
    result = await run_dataset(runtime_factory(cost=0.001), ITEMS[1:3], graders)
    small, large = ({g.grader: g for g in r.grades} for r in result.runs)
    assert not small["refunds_large"].passed
    assert large["refunds_large"].passed
    assert small["never_refunds_500"].passed
    assert large["never_refunds_500"].passed
    # triage's handoff call, refund's tool call, refund's answer: three model calls.
    assert small["calls"].passed
    assert small["calls"].reason == "3 model calls <= 3"
    assert not small["handoffs"].passed
    assert small["handoffs"].reason == "1 handoffs > 0"
    assert not small["cost"].passed  # 3 calls x $0.001 > $0.0025
    assert small["latency"].passed
    assert small["owner"].passed


async def test_a_tool_error_fails_the_no_tool_error_grader() -> None:
    item = EvalItem(id="huge", messages=("refund of $5000",))
    result = await run_dataset(runtime_factory(rule=False), [item], [NoToolErrorGrader("clean")])
    [grade] = result.runs[0].grades
    assert not grade.passed
    assert "amount over the limit" in grade.reason


async def test_repeats_and_the_summary_count_every_run() -> None:
    graders = [StringGrader("says_done", "contains", value="Done")]
    result = await run_dataset(runtime_factory(), ITEMS, graders, repeat=3, concurrency=64)
    assert len(result.runs) == 12
    assert [(r.item.id, r.repeat) for r in result.runs[:3]] == [
        ("hello", 0),
        ("hello", 1),
        ("hello", 2),
    ]
    summary = summarize(result)
    assert summary.runs == 12
    [grader] = summary.graders
    assert (grader.passed, grader.runs) == (9, 12)
    assert grader.pass_rate.low < 0.75 < grader.pass_rate.high
    assert summary.cost_usd_total == pytest.approx(sum(r.trace.cost_usd for r in result.runs))
    assert summary.latency_p95_s >= summary.latency_p50_s


async def test_bad_options_are_refused_with_the_fix() -> None:
    from relaybaton.errors import ConfigError

    with pytest.raises(ConfigError, match="--concurrency must be at least 1"):
        await run_dataset(runtime_factory(), ITEMS, [], concurrency=0)
    with pytest.raises(ConfigError, match="--approvals must be one of"):
        await run_dataset(runtime_factory(), ITEMS, [], approvals="maybe")


async def test_progress_rewrites_one_line_on_a_terminal_and_prints_lines_otherwise() -> None:
    import io

    from relaybaton.evals import Progress

    result = await run_dataset(runtime_factory(), ITEMS[:2], GRADERS)
    live, plain = io.StringIO(), io.StringIO()
    for out, is_live in ((live, True), (plain, False)):
        progress = Progress(out, 2, live=is_live)
        for run in result.runs:
            progress(run)
    assert live.getvalue().count("\r") == 2
    assert live.getvalue().endswith("2/2  pass 1  fail 1\n")
    assert plain.getvalue().splitlines() == [
        "[A] 1/2 pass hello#0",
        "[A] 2/2 FAIL small#0 (no_handoff_for_greeting)",
    ]


async def test_junit_and_html_survive_hostile_replies() -> None:
    import xml.etree.ElementTree as ET

    from relaybaton.evals import html_report, junit_report, summarize

    item = EvalItem(id="x\x01<y>", messages=("<b>hi</b>\x02 & bye",))
    result = await run_dataset(
        runtime_factory(), [item], [StringGrader("s", "contains", value="<")]
    )
    root = ET.fromstring(junit_report([result]))
    [case] = root.iter("testcase")
    assert case.get("name") == "x\ufffd<y>#0"
    page = html_report("t", [result], [summarize(result)])
    assert "<b>hi</b>" not in page
    assert "&lt;b&gt;hi&lt;/b&gt;" in page


async def test_a_condition_on_an_argument_a_call_does_not_have_is_not_met() -> None:
    graders = [
        ToolCalledGrader("by_currency", "issue_refund", when="currency == 'EUR'"),
        ApprovalRequiredGrader("eur_waits", "issue_refund", when="currency == 'EUR'"),
    ]
    result = await run_dataset(runtime_factory(rule=False), [ITEMS[2]], graders)
    called, approval = result.runs[0].grades
    assert not called.passed  # issue_refund has no currency: no call matches
    assert approval.passed
    assert approval.reason.startswith("0 call(s) of issue_refund")
