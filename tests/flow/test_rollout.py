"""A flow's `[models.<slot>.rollout]` and `policy = "learned"`, from the flow file."""

from __future__ import annotations

import pytest

from relaybaton.actors import ModelCallEvent
from relaybaton.actors.routing import LearnedRouter, ModelSlot
from relaybaton.actors.routing._rollout import RolloutState
from relaybaton.adapters import ModelCallRecord
from relaybaton.errors import FlowError
from relaybaton.flow import open_flow, parse_flow

pytestmark = pytest.mark.anyio

FLOW = """
[flow]
entry = "a"

[models.assistant]
model = "simulated:general"
latency_ms = 1
price_in_per_1k = 0.001
price_out_per_1k = 0.002

[models.assistant.rollout]
model = "simulated:general-v2"
stages = [0, 50, 100]
window_s = 0.005
min_calls = 3

[[agents]]
name = "a"
model = "assistant"
instructions = "Knowledge: rolled answers."
"""


async def test_a_shadow_stage_from_the_flow_file_moves_on_shadow_evidence_alone() -> None:
    async with open_flow(parse_flow(FLOW), gc_young_threshold=None) as runtime:
        slot = runtime.slots["assistant"]
        assert isinstance(slot, ModelSlot)
        rollout = slot.rollout
        assert rollout is not None
        assert rollout.rollout.stages == (0.0, 0.5, 1.0)
        records: list[ModelCallRecord] = []
        slot.listeners.append(records.append)
        shadowed: list[str] = []
        for i in range(200):  # until the shadow evidence moves it; never this many
            if rollout.rollout.share > 0.0:
                break
            conversation = f"s{i}"
            await runtime.send(conversation, "hello")
            shadowed.append(conversation)
        assert rollout.events[0].action == "step"
        assert rollout.events[0].share == 0.5
        await runtime.settle()
        copies = [r for r in records if r.shadow]
        assert copies
        assert {r.adapter for r in copies} == {"simulated:general-v2"}
        assert all(r.usage.cost_usd > 0 for r in copies)
        for conversation_id in shadowed:
            conversation = runtime.conversation(conversation_id)
            assert conversation is not None
            # The conversation saw and paid for the incumbent only.
            served = [r for r in records if r.conversation_id == conversation_id]
            paid = sum(r.usage.cost_usd for r in served if not r.shadow)
            assert conversation.usage_total().cost_usd == pytest.approx(paid)
            events = conversation.events or []
            models = {e.model for e in events if isinstance(e, ModelCallEvent)}
            assert models == {"simulated:general"}


async def test_a_rollout_that_is_overridden_for_the_run_does_not_start() -> None:
    flow = parse_flow(FLOW)
    overrides = {"assistant": "simulated:other"}
    async with open_flow(flow, gc_young_threshold=None, model_overrides=overrides) as runtime:
        slot = runtime.slots["assistant"]
        assert isinstance(slot, ModelSlot)
        assert slot.rollout is None


ROUTED = """
[flow]
entry = "a"

[models.assistant]
model = "simulated:general"
latency_ms = 1

[models.assistant.routing]
policy = "learned"
explore = 0.0

[[models.assistant.routing.candidates]]
name = "general"
model = "simulated:general"
price_in_per_1k = 0.0001

[[models.assistant.routing.candidates]]
name = "reasoning"
model = "simulated:reasoning"
tier = 3
price_in_per_1k = 0.003

[models.assistant.rollout]
model = "simulated:reasoning-v2"
replaces = "reasoning"

[[agents]]
name = "a"
model = "assistant"
instructions = "Knowledge: learned answers."
"""


async def test_a_routed_slot_rolls_out_in_place_of_one_candidate_and_can_learn() -> None:
    async with open_flow(parse_flow(ROUTED), gc_young_threshold=None) as runtime:
        slot = runtime.slots["assistant"]
        assert isinstance(slot, ModelSlot)
        assert slot.router is not None
        assert isinstance(slot.router.learned, LearnedRouter)
        rollout = slot.rollout
        assert rollout is not None
        assert rollout.incumbent is slot.router.by_name["reasoning"].adapter
        assert rollout.candidate.name == "simulated:reasoning-v2"
        assert rollout.rollout.state is RolloutState.RUNNING
        result = await runtime.send("c1", "hello")
        conversation = runtime.conversation("c1")
        assert conversation is not None
    assert result.text == "learned answers."
    [call] = [e for e in conversation.events or [] if isinstance(e, ModelCallEvent)]
    assert call.route is not None
    # Without grades the bandit's prior is even, so the cheapest candidate takes the call.
    assert (call.route.candidate, call.route.policy) == ("general", "learned")


def _problems(text: str) -> str:
    with pytest.raises(FlowError) as caught:
        parse_flow(text)
    return str(caught.value)


def test_rollout_stages_must_grow_and_end_at_100() -> None:
    text = _problems(FLOW.replace("stages = [0, 50, 100]", "stages = [0, 50, 20]"))
    assert (
        "models.assistant.rollout.stages: must grow at every stage and end at 100 (the new "
        "model takes every call), got [0.0, 50.0, 20.0]; e.g. [0, 5, 50, 100]"
    ) in text
    text = _problems(FLOW.replace("stages = [0, 50, 100]", "stages = [0, 500]"))
    assert "models.assistant.rollout.stages: must be percentages within [0, 100]" in text


def test_a_rollout_names_a_new_model_and_a_candidate_that_exists() -> None:
    text = _problems(FLOW.replace('"simulated:general-v2"', '"simulated:general"'))
    assert (
        'models.assistant.rollout.model: "simulated:general" is the model it would replace; '
        "name the new model"
    ) in text
    text = _problems(ROUTED.replace('replaces = "reasoning"', 'replaces = "reasonnig"'))
    assert (
        'models.assistant.rollout.replaces: no candidate named "reasonnig" (did you mean '
        '"reasoning"?); candidates: general, reasoning'
    ) in text
    text = _problems(FLOW.replace("min_calls = 3", 'min_calls = 3\nreplaces = "general"'))
    assert "models.assistant.rollout.replaces: only a slot with a routing table" in text


def test_a_misspelt_rollout_field_and_policy_are_named_with_their_paths() -> None:
    text = _problems(FLOW.replace("window_s = 0.005", "windows_s = 0.005"))
    assert (
        'models.assistant.rollout: unknown field `windows_s` (did you mean "window_s"?); '
        "allowed: model, replaces, stages, window_s"
    ) in text
    text = _problems(ROUTED.replace('policy = "learned"', 'policy = "learnd"'))
    assert (
        'models.assistant.routing.policy: "learnd" is not a routing policy (did you mean '
        '"learned"?); use one of rules, learned'
    ) in text
