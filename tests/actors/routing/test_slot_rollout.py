"""Rollouts in a slot: shadow copies off the caller's path, arms that hold, promotion, rollback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybaton.actors.routing import HealthBoard, ModelSlot, RolloutPolicy, open_model_supervisor
from relaybaton.actors.routing._rollout import arm_point
from relaybaton.actors.routing._router import Decision
from relaybaton.actors.routing._shadow import ShadowRunner, open_shadow_runner
from relaybaton.actors.routing._slot_rollout import RolloutEvent
from relaybaton.adapters import (
    ModelCallRecord,
    ModelRequest,
    RequestMetadata,
    RetryPolicy,
    UserMessage,
)
from relaybaton.errors import ConfigError, ModelOverloadedError
from relaybaton.runtime import open_system
from relaybaton.testing import FakeClock, ScriptedModel, tool_call

pytestmark = pytest.mark.anyio


def _request(conversation: str, text: str = "hello") -> ModelRequest:
    return ModelRequest(
        messages=(UserMessage(text=text),),
        metadata=RequestMetadata(agent="triage", conversation_id=conversation),
    )


@asynccontextmanager
async def _shadowing(slot: ModelSlot) -> AsyncIterator[ShadowRunner]:
    """A runner for the slot's shadow copies, as a runtime lends one, for the block."""
    async with open_shadow_runner() as runner:
        slot.shadows = runner
        yield runner


def _hanging() -> ScriptedModel:
    return ScriptedModel(lambda _: "new", name="new", gate=asyncio.Event())


def _answer(text: str) -> ScriptedModel:
    return ScriptedModel(lambda _: text, name=text, cost_per_call=0.01)


def _slot(
    clock: FakeClock, new: ScriptedModel, *, stages: tuple[float, ...] = (0.0, 0.05, 0.5, 1.0)
) -> tuple[ModelSlot, list[ModelCallRecord], list[RolloutEvent]]:
    slot = ModelSlot(
        "general", _answer("old"), clock=clock, retry=RetryPolicy(attempts=2, base_delay=0.0)
    )
    records: list[ModelCallRecord] = []
    events: list[RolloutEvent] = []
    slot.listeners.append(records.append)
    slot.rollout_listeners.append(events.append)
    policy = RolloutPolicy(stages=stages, window_s=10.0, min_calls=6)
    slot.start_rollout(new, policy=policy, shadow_limit=2)
    return slot, records, events


async def test_a_shadow_copy_runs_off_the_callers_path_and_its_answer_goes_nowhere() -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    new = ScriptedModel([tool_call("refund", amount=500)], name="new", gate=gate, cost_per_call=0.5)
    slot, records, _ = _slot(clock, new)
    async with _shadowing(slot):
        response = await slot.call(_request("c1"), agent="triage")
        # The caller has the incumbent's answer while the copy is still held in flight.
        assert response.message.text == "old"
        await anyio.wait_all_tasks_blocked()
        assert len(new.requests) == 1
        assert new.requests[0].messages == _request("c1").messages
        assert [(r.adapter, r.shadow) for r in records] == [("old", False)]
        gate.set()
        await anyio.wait_all_tasks_blocked()
    rollout = slot.rollout
    assert rollout is not None
    assert [(r.adapter, r.shadow, r.outcome) for r in records] == [
        ("old", False, "ok"),
        ("new", True, "ok"),
    ]
    # Its cost is seen (metrics, the rollout's tally), but it was nobody's answer: the tool
    # call it asked for was never run, and the caller's response is the incumbent's.
    assert records[1].usage.cost_usd == 0.5
    assert rollout.shadow_cost_usd == 0.5
    assert rollout.shadow_in_flight == 0
    assert rollout.rollout.arms["new"].count == 1


async def test_shadow_copies_are_bounded_and_the_rest_are_dropped_and_counted() -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    new = ScriptedModel(lambda _: "new", name="new", gate=gate)
    slot, _, _ = _slot(clock, new)
    rollout = slot.rollout
    assert rollout is not None
    async with _shadowing(slot):
        for i in range(5):
            await slot.call(_request(f"c{i}"))
        await anyio.wait_all_tasks_blocked()
        assert (rollout.shadow_in_flight, rollout.shadow_calls, rollout.shadow_dropped) == (2, 2, 3)
        gate.set()
        await anyio.wait_all_tasks_blocked()
        assert rollout.shadow_in_flight == 0
    assert len(new.requests) == 2


async def test_shadow_calls_still_running_are_cancelled_when_their_runner_closes() -> None:
    clock = FakeClock()
    new = _hanging()
    slot, records, _ = _slot(clock, new)
    async with _shadowing(slot) as runner:
        await slot.call(_request("c1"))
        await anyio.wait_all_tasks_blocked()
    assert runner.closed
    assert slot.rollout is not None
    assert slot.rollout.shadow_in_flight == 0
    assert [r.shadow for r in records] == [False]  # the cancelled copy published nothing
    await slot.call(_request("c2"))  # with no runner, no copy is sent, and none waits
    assert slot.rollout.shadow_dropped == 1
    assert len(new.requests) == 1


async def test_a_hung_shadow_call_times_out_as_an_error_of_the_new_model() -> None:
    clock = FakeClock()
    new = _hanging()
    slot, records, _ = _slot(clock, new)
    async with _shadowing(slot):
        await slot.call(_request("c1"))
        await anyio.wait_all_tasks_blocked()
        await clock.advance(60.0)
        await anyio.wait_all_tasks_blocked()
    assert [(r.adapter, r.outcome) for r in records] == [
        ("old", "ok"),
        ("new", "ModelTimeoutError"),
    ]


async def _shadow_traffic(clock: FakeClock, slot: ModelSlot, seconds: int) -> list[str]:
    answers: list[str] = []
    async with _shadowing(slot):
        for i in range(seconds):
            answers.append((await slot.call(_request(f"c{i}"))).message.text)
            await anyio.wait_all_tasks_blocked()
            await clock.advance(1.0)
    return answers


async def test_clean_shadow_evidence_gives_the_new_model_its_first_share() -> None:
    clock = FakeClock()
    slot, _, events = _slot(clock, _answer("new"))
    answers = await _shadow_traffic(clock, slot, 12)
    assert answers == ["old"] * 12  # in the shadow stage, users only ever see the incumbent
    assert [(e.action, e.share, e.reason) for e in events] == [("step", 0.05, "share 5%")]
    assert events[0].at == 10.0  # after the first clean analysis window, not before


async def test_a_failing_new_model_is_rolled_back_from_the_shadow_stage() -> None:
    clock = FakeClock()
    broken = ScriptedModel(lambda _: ModelOverloadedError("down"), name="new")
    slot, _, events = _slot(clock, broken)
    answers = await _shadow_traffic(clock, slot, 12)
    assert answers == ["old"] * 12  # shadow failures never reach a caller
    assert [(e.action, e.share) for e in events] == [("rollback", 0.0)]
    assert events[0].reason.startswith("error rate 100.0% (3/3)")
    assert slot.rollout is not None
    assert not slot.rollout.running


async def test_the_new_arm_serves_its_conversations_and_a_promotion_installs_the_new_model() -> (
    None
):
    clock = FakeClock()
    new = _answer("new")
    slot, _, events = _slot(clock, new, stages=(0.5, 1.0))
    rollout = slot.rollout
    assert rollout is not None
    served: dict[str, str] = {}
    for i in range(20):
        conversation = f"c{i}"
        served[conversation] = (await slot.call(_request(conversation))).message.text
        await clock.advance(1.0)
    assert [e.action for e in events] == ["promote"]
    promoted_at = events[0].at
    # Conversation i was called at time i: before the promotion, its arm is its hash point
    # against the 50% share; after it, the new model serves everyone.
    expected = {
        f"c{i}": "new" if i > promoted_at or arm_point(f"c{i}") < 0.5 else "old" for i in range(20)
    }
    assert served == expected
    assert 0 < sum(1 for i in range(int(promoted_at)) if served[f"c{i}"] == "new") < promoted_at
    assert slot.adapter is new
    assert slot.primary is new
    assert (await slot.call(_request("c0"))).message.text == "new"


async def test_a_retry_after_the_new_model_failed_goes_to_the_incumbent() -> None:
    clock = FakeClock()
    flaky = ScriptedModel(lambda _: ModelOverloadedError("busy"), name="new")
    slot, _, _ = _slot(clock, flaky, stages=(1.0,))
    assert slot.rollout is not None
    # Stage 1.0 as the first stage: every conversation is on the new arm until it decides.
    routes: list[Decision] = []
    answers: list[str] = []

    async def call() -> None:
        answers.append((await slot.call(_request("c1"), routes=routes)).message.text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        await clock.advance(0.0)  # the retry's backoff, on the slot's clock
    assert answers == ["old"]
    assert [(d.policy, d.candidate) for d in routes] == [("rollout", "new"), ("retry", "old")]
    assert routes[0].reason.startswith("rollout: the conversation is on the new arm")


def test_start_rollout_refuses_a_second_rollout_and_a_same_named_model() -> None:
    slot = ModelSlot("general", _answer("old"), clock=FakeClock())
    with pytest.raises(ConfigError, match="has the name of the one it replaces"):
        slot.start_rollout(_answer("old"))
    slot.start_rollout(_answer("new"))
    with pytest.raises(ConfigError, match="already runs a rollout of 'new'"):
        slot.start_rollout(_answer("newer"))


@settings(max_examples=100, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            st.integers(0, 7),
            st.sampled_from([True] * 19 + [False]),  # failures are rare, so shares can grow
            st.sampled_from([0.0, 0.5, 2.0]),
        ),
        min_size=10,
        max_size=150,
    ),
    stages=st.sampled_from([(0.0, 0.05, 0.5, 1.0), (0.2, 0.6, 1.0), (0.5, 1.0)]),
)
def test_a_conversation_stays_on_one_arm_while_the_rollout_runs(
    calls: list[tuple[int, bool, float]], stages: tuple[float, ...]
) -> None:
    """Whatever the outcomes and however the shares grow, no conversation changes models."""

    async def run() -> None:
        clock = FakeClock()
        bad: set[str] = set()  # conversations whose next new-arm call fails

        def new_model(request: ModelRequest) -> str | Exception:
            if request.metadata.conversation_id in bad:
                return ModelOverloadedError("busy")
            return "new"

        slot = ModelSlot("general", _answer("old"), clock=clock, retry=RetryPolicy(attempts=1))
        slot.start_rollout(
            ScriptedModel(new_model, name="new"),
            policy=RolloutPolicy(stages=stages, window_s=3.0, min_calls=2),
        )
        rollout = slot.rollout
        assert rollout is not None
        arms: dict[str, set[str]] = {}
        async with _shadowing(slot):  # the shadow stage moves on shadow evidence
            for index, ok, pause in calls:
                conversation = f"c{index}"
                (bad.discard if ok else bad.add)(conversation)
                running = rollout.running
                routes: list[Decision] = []
                with contextlib.suppress(ModelOverloadedError):
                    await slot.call(_request(conversation), routes=routes)
                await anyio.wait_all_tasks_blocked()
                if running and rollout.running:
                    arms.setdefault(conversation, set()).add(routes[0].candidate)
                await clock.advance(pause)
        assert all(len(models) == 1 for models in arms.values()), arms

    asyncio.run(run())


async def test_the_supervisor_keeps_rollout_moves_and_shadow_spend_apart_from_agents() -> None:
    clock = FakeClock()
    slot, _, _ = _slot(clock, _answer("new"), stages=(0.0, 1.0))
    board = HealthBoard(clock)
    async with (
        open_system(clock=clock) as system,
        open_model_supervisor(system, {"general": slot}, board) as supervisor,
        _shadowing(slot),
    ):
        for i in range(12):
            await slot.call(_request(f"c{i}"), agent="triage")
            await anyio.wait_all_tasks_blocked()
            await clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        state = supervisor.state
        assert [(e.action, e.slot) for e in state.rollouts] == [("promote", "general")]
        assert [(s.action, s.source, s.target) for s in state.swaps] == [("promote", "old", "new")]
        # Ten shadow copies before the promotion at t=10 s (0.01 each for the incumbent's
        # calls); after it, the new model serves the agent's calls itself.
        assert state.shadow_spend_by_model == {"new": pytest.approx(0.1)}
        assert state.spend_by_agent == {"triage": pytest.approx(0.12)}
        assert slot.adapter.name == "new"
