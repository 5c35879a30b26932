"""Online grading: a sampled share of live conversations graded off the reply path."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaybaton.adapters import ModelCallRecord
from relaybaton.evals import (
    Grade,
    HandoffGrader,
    StringGrader,
    in_sample,
    open_online_grading,
)
from relaybaton.evals._grade import Sample
from tests.evals.conftest import runtime_factory

pytestmark = pytest.mark.anyio


@given(st.text(max_size=30), st.floats(0, 1), st.floats(0, 1))
def test_the_sample_is_stable_and_grows_with_its_share(cid: str, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert in_sample(cid, low) == in_sample(cid, low)
    if in_sample(cid, low):
        assert in_sample(cid, high)
    assert not in_sample(cid, 0.0)
    assert in_sample(cid, 1.0)


def test_a_tenth_samples_about_a_tenth() -> None:
    share = sum(in_sample(f"c-{i}", 0.1) for i in range(20_000)) / 20_000
    assert 0.09 < share < 0.11


async def test_live_replies_are_graded_and_the_grade_reaches_the_slot_as_utility() -> None:
    graders = [
        StringGrader("says_done", "contains", value="Done"),
        HandoffGrader("went_to_refund", "refund"),
        StringGrader("needs_expected", "contains", expected="answer"),  # skipped online
    ]
    async with runtime_factory()() as runtime:
        records: list[ModelCallRecord] = []
        runtime.slots["m"].listeners.append(records.append)
        seen: list[tuple[str, str, tuple[Grade, ...]]] = []
        done = asyncio.Event()
        async with open_online_grading(runtime, graders, sample=1.0) as grading:
            grading.listeners.append(lambda c, a, g: (seen.append((c, a, g)), done.set()))
            result = await runtime.send("c1", "refund of $40 please")
            assert result.text == "Done: refunded $40 on A1"
            await done.wait()
        [(conversation, agent, grades)] = seen
        assert (conversation, agent) == ("c1", "refund")
        assert [(g.grader, g.passed) for g in grades] == [
            ("says_done", True),
            ("went_to_refund", True),
        ]
        [graded] = [r for r in records if r.outcome == "graded"]
        assert (graded.utility, graded.agent, graded.conversation_id) == (1.0, "refund", "c1")
        assert grading.by_grader["says_done"] == [1.0, 1.0, 1.0]


async def test_conversations_outside_the_sample_are_not_graded() -> None:
    async with runtime_factory()() as runtime:
        async with open_online_grading(
            runtime, [StringGrader("s", "contains", value="x")], sample=0.0
        ) as grading:
            await runtime.send("c1", "hello")
            assert grading.queued == 0
        assert grading.graded == 0


async def test_a_full_queue_drops_grades_never_replies() -> None:
    gate = asyncio.Event()

    async def slow(sample: Sample) -> float:
        await gate.wait()
        return 1.0

    from relaybaton.evals import FunctionGrader

    async with (
        runtime_factory()() as runtime,
        open_online_grading(
            runtime, [FunctionGrader("slow", slow)], sample=1.0, queue=1
        ) as grading,
    ):
        for index in range(5):
            result = await runtime.send(f"c{index}", "hello")
            assert result.text.startswith("Hello!")
        # One is being graded, one waits in the queue, the others were dropped.
        assert grading.dropped >= 2
        assert grading.queued + grading.dropped == 5
        gate.set()
