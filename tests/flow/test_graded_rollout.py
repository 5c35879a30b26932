"""Online grades reach a flow's rollout: with min_graded it waits for them, then decides."""

from __future__ import annotations

import asyncio

import pytest

from relaybaton.actors.routing import ModelSlot
from relaybaton.actors.routing._rollout import RolloutState
from relaybaton.evals import FunctionGrader, Sample, open_online_grading
from relaybaton.flow import open_flow, parse_flow

pytestmark = pytest.mark.anyio

FLOW = """
[models.assistant]
model = "simulated:general"
latency_ms = 5
latency_sigma = 0

[models.assistant.rollout]
model = "simulated:general-v2"
stages = [50, 100]
window_s = 0.0001
min_calls = 3
min_graded = 4
quality_margin = 0.2
p95_margin = 100  # this test is about quality; a loaded machine makes tiny p95s noisy

[[agents]]
name = "a"
model = "assistant"
instructions = "Knowledge: rolled answers."
"""


async def _drive(quality: dict[str, float]) -> tuple[ModelSlot, int]:
    """Talk until the rollout decides; grades by the model that answered (from the trace)."""

    def grade(sample: Sample) -> float:
        model = sample.trace.model_calls()[-1].model if sample.trace.model_calls() else ""
        return quality.get(model, 0.0)

    async with open_flow(parse_flow(FLOW)) as runtime:
        slot = runtime.slots["assistant"]
        assert isinstance(slot, ModelSlot)
        graded = asyncio.Event()
        async with open_online_grading(runtime, [FunctionGrader("q", grade)], sample=1.0) as online:
            online.listeners.append(lambda *_: graded.set())
            for index in range(400):
                rollout = slot.rollout
                assert rollout is not None
                if not rollout.running:
                    break
                graded.clear()
                await runtime.send(f"c{index}", "hello")
                await graded.wait()
            return slot, online.graded


async def test_a_new_model_graded_as_good_is_promoted_only_after_its_grades() -> None:
    slot, graded = await _drive({"simulated:general": 0.9, "simulated:general-v2": 0.9})
    rollout = slot.rollout
    assert rollout is not None
    assert rollout.rollout.state is RolloutState.PROMOTED
    assert slot.primary.name == "simulated:general-v2"
    assert graded >= 8  # min_graded grades of each arm came before the promotion


async def test_a_new_model_graded_as_worse_is_rolled_back_on_quality() -> None:
    slot, _graded = await _drive({"simulated:general": 0.9, "simulated:general-v2": 0.3})
    rollout = slot.rollout
    assert rollout is not None
    assert rollout.rollout.state is RolloutState.ROLLED_BACK
    assert rollout.rollout.reason.startswith("quality 0.30 < incumbent 0.90")
