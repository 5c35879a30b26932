"""Grades after the call: the metrics stream, the utility rule, rollouts, the learned router."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybaton.actors.routing import (
    BreakerPolicy,
    Candidate,
    HealthBoard,
    ModelSlot,
    RolloutPolicy,
    SupervisorPolicy,
    open_model_supervisor,
)
from relaybaton.actors.routing._supervisor import Tick
from relaybaton.actors.routing._utility_rule import UtilityRule
from relaybaton.adapters import ModelCallRecord, SimulatedModel
from relaybaton.errors import ConfigError
from relaybaton.runtime import open_system
from relaybaton.testing import FakeClock

pytestmark = pytest.mark.anyio

POLICY = SupervisorPolicy(
    utility_floor=0.8, min_graded=5, cooldown_s=0.0, utility_margin=0.1,
    probe_after_s=10.0, probe_backoff=2.0, max_probe_after_s=40.0,
)  # fmt: skip


def _slot(clock: FakeClock) -> tuple[ModelSlot, SimulatedModel, SimulatedModel, HealthBoard]:
    weak = SimulatedModel("simulated:weak", clock=clock)
    strong = SimulatedModel("simulated:strong", clock=clock)
    board = HealthBoard(clock, BreakerPolicy(p95_s=None))
    slot = ModelSlot(
        "general", weak, clock=clock,
        candidates=[Candidate(weak, tier=0), Candidate(strong, tier=1)], board=board,
    )  # fmt: skip
    return slot, weak, strong, board


async def test_a_grade_goes_on_the_metrics_stream_as_the_calls_utility() -> None:
    clock = FakeClock()
    slot, _weak, _strong, _board = _slot(clock)
    seen: list[ModelCallRecord] = []
    slot.listeners.append(seen.append)
    record = slot.grade("c1", 0.75, agent="triage")
    assert seen == [record]
    assert (record.adapter, record.outcome, record.utility, record.slot, record.agent) == (
        "simulated:weak", "graded", 0.75, "general", "triage",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"a grade is a utility in 0\.\.1"):
        slot.grade("c1", 1.5)


async def test_low_grades_escalate_then_the_weak_model_is_probed_and_kept_when_good() -> None:
    clock = FakeClock()
    slot, weak, strong, board = _slot(clock)
    async with (
        open_system(clock=clock) as system,
        open_model_supervisor(system, {"general": slot}, board, policy=POLICY) as supervisor,
    ):
        for _ in range(5):
            slot.grade("c", 0.3)
        await supervisor.ref.ask(Tick())
        assert slot.adapter is strong
        [escalation] = supervisor.state.swaps
        assert escalation.action == "escalate"
        assert escalation.reason == "utility 0.30 < 0.8 over 5 graded calls"
        # Grades are not calls: the call windows saw none of them.
        assert supervisor.state.window("simulated:weak").count == 0
        assert supervisor.state.grades == 5
        await clock.advance(10.0)
        await supervisor.ref.ask(Tick())
        assert slot.adapter is weak
        assert supervisor.state.swaps[-1].action == "probe"
        for _ in range(5):
            slot.grade("c", 0.95)
        await supervisor.ref.ask(Tick())
        await clock.advance(100.0)
        await supervisor.ref.ask(Tick())
        assert slot.adapter is weak  # the probe passed: no more swaps
        assert [s.action for s in supervisor.state.swaps] == ["escalate", "probe"]


async def test_a_failed_probe_escalates_again_and_the_next_probe_waits_longer() -> None:
    clock = FakeClock()
    slot, weak, strong, board = _slot(clock)
    async with (
        open_system(clock=clock) as system,
        open_model_supervisor(system, {"general": slot}, board, policy=POLICY) as supervisor,
    ):
        for _ in range(5):
            slot.grade("c", 0.1)
        await clock.advance(10.0)
        await supervisor.ref.ask(Tick())
        assert slot.adapter is weak  # probing
        for _ in range(5):
            slot.grade("c", 0.5)
        await supervisor.ref.ask(Tick())
        assert slot.adapter is strong
        assert supervisor.state.swaps[-1].reason == (
            "probe failed: utility 0.50 < 0.8 over 5 grades; next probe in 20 s"
        )
        await clock.advance(10.0)
        await supervisor.ref.ask(Tick())
        assert slot.adapter is strong  # backoff: 20 s this time
        await clock.advance(10.0)
        await supervisor.ref.ask(Tick())
        assert slot.adapter is weak
        assert [s.action for s in supervisor.state.swaps] == [
            "escalate", "probe", "escalate", "probe",
        ]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.8, max_value=0.899), min_size=1, max_size=40))
def test_grades_inside_the_margin_never_move_a_probed_model(grades: list[float]) -> None:
    clock = FakeClock()
    slot, weak, _strong, board = _slot(clock)
    rule = UtilityRule(POLICY)
    for _ in range(5):
        rule.grade("simulated:weak", 0.0, 0.0)
    swap = rule.check(slot, board, 0.0)
    assert swap is not None
    slot.swap(swap[1])
    [probe] = rule.probes_due([slot], 10.0)
    slot.swap(probe[1])
    for index, utility in enumerate(grades):
        rule.grade("simulated:weak", 10.0 + index, utility)
        assert rule.check(slot, board, 10.0 + index) is None
    assert slot.adapter is weak
    assert rule.demotions["general"].probing  # still on probation: no flapping either way


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.8, max_value=1.0), min_size=1, max_size=60))
def test_grades_at_or_above_the_floor_never_escalate(grades: list[float]) -> None:
    clock = FakeClock()
    slot, weak, _strong, board = _slot(clock)
    rule = UtilityRule(POLICY)
    for index, utility in enumerate(grades):
        rule.grade("simulated:weak", float(index), utility)
        assert rule.check(slot, board, float(index)) is None
    assert slot.adapter is weak


async def test_grades_reach_a_rollouts_quality_gate_and_roll_a_worse_model_back() -> None:
    clock = FakeClock()
    old = SimulatedModel("simulated:old", clock=clock)
    new = SimulatedModel("simulated:new", clock=clock)
    slot = ModelSlot("general", old, clock=clock)
    policy = RolloutPolicy(stages=(0.5, 1.0), min_calls=4, window_s=1e9, quality_margin=0.1)
    rollout = slot.start_rollout(new, policy=policy)
    moved: list[str] = []
    slot.rollout_listeners.append(lambda event: moved.append(event.action))
    for index in range(6):
        rollout.observe("simulated:old", float(index), 0.1, ok=True)
        rollout.observe("simulated:new", float(index), 0.1, ok=True)
    for _ in range(4):
        slot.grade("c", 0.9, adapter="simulated:old")
        slot.grade("c", 0.5, adapter="simulated:new")
    assert moved == ["rollback"]
    assert rollout.rollout.reason == "quality 0.50 < incumbent 0.90 - 0.1"


async def test_a_rollout_with_min_graded_waits_for_grades_of_both_arms_before_it_steps_up() -> None:
    clock = FakeClock()
    old = SimulatedModel("simulated:old", clock=clock)
    new = SimulatedModel("simulated:new", clock=clock)
    slot = ModelSlot("general", old, clock=clock)
    policy = RolloutPolicy(stages=(0.5, 1.0), min_calls=2, window_s=0.0, min_graded=3)
    rollout = slot.start_rollout(new, policy=policy)
    for index in range(4):
        assert rollout.observe("simulated:new", float(index), 0.1, ok=True) is None
    for _ in range(3):
        slot.grade("c", 0.9, adapter="simulated:new")
    assert rollout.running  # grades of the new arm alone compare with nothing
    for _ in range(2):
        slot.grade("c", 0.9, adapter="simulated:old")
    assert rollout.running
    slot.grade("c", 0.9, adapter="simulated:old")
    assert rollout.rollout.state.value == "promoted"
    assert slot.primary is new


async def test_a_grade_with_its_request_teaches_the_learned_router() -> None:
    from relaybaton.actors.routing import HeuristicClassifier, LearnedRouter, Router
    from relaybaton.adapters import ModelRequest, UserMessage

    clock = FakeClock()
    weak = SimulatedModel("simulated:weak", clock=clock)
    strong = SimulatedModel("simulated:strong", clock=clock)
    candidates = [Candidate(weak, name="weak", tier=1), Candidate(strong, name="strong", tier=3)]
    learned = LearnedRouter()
    slot = ModelSlot(
        "general", weak, clock=clock, candidates=candidates,
        router=Router(candidates, learned=learned), classifier=HeuristicClassifier(),
    )  # fmt: skip
    request = ModelRequest(messages=(UserMessage(text="prove the theorem step by step"),))
    features = HeuristicClassifier().classify(request)
    before = learned.estimate(features, "weak")
    for _ in range(30):
        slot.grade("c", 0.0, adapter="simulated:weak", request=request)
    assert learned.grades == 30
    assert learned.estimate(features, "weak") < before
    slot.grade("c", 1.0)  # without the request the features are unknown: nothing learned
    assert learned.grades == 30


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["call", "grade"]), st.sampled_from(["old", "new"]), st.floats(0.0, 1.0)
        ),
        max_size=120,
    ),
    st.integers(min_value=1, max_value=10),
)
def test_a_rollout_never_steps_up_before_both_arms_have_min_graded_grades(
    steps: list[tuple[str, str, float]], min_graded: int
) -> None:
    from relaybaton.actors.routing import Rollout

    policy = RolloutPolicy(stages=(0.5, 1.0), min_calls=1, window_s=0.0, min_graded=min_graded)
    rollout = Rollout("old", "new", policy=policy)
    grades = {"old": 0, "new": 0}
    for index, (kind, arm, value) in enumerate(steps):
        if kind == "call":
            decision = rollout.record(arm, float(index), 0.1, ok=True)
        else:
            grades[arm] += 1
            decision = rollout.grade(arm, float(index), value)
        if decision in {"step", "promote"}:
            assert grades["old"] >= min_graded
            assert grades["new"] >= min_graded
            return
