"""Progressive rollout: sticky arms, stepping up on clean windows, rolling back when worse."""

from __future__ import annotations

import random

from relaybaton.actors.routing import Rollout, RolloutPolicy
from relaybaton.actors.routing._rollout import RolloutState


def test_a_conversation_keeps_its_arm_while_shares_grow() -> None:
    rollout = Rollout("old", "new", policy=RolloutPolicy(window_s=10, min_calls=5))
    rng = random.Random(1)
    arms: dict[str, str] = {}
    now = 0.0
    while rollout.state is RolloutState.RUNNING:
        now += 0.1
        conversation = f"c{rng.randrange(200)}"
        arm = rollout.arm(conversation)
        if arms.get(conversation) == "new":
            assert arm == "new"  # never moved back while the rollout runs
        arms[conversation] = arm
        rollout.record(arm if rollout.share else "new", now, 1.0, ok=True)
        rollout.record("old", now, 1.0, ok=True)
    assert rollout.state is RolloutState.PROMOTED
    assert [h.split(":")[0] for _, h in rollout.history] == ["step", "step", "promote"]


def test_a_worse_error_rate_rolls_back_with_the_reason() -> None:
    rollout = Rollout("old", "new", stages=(0.5, 1.0))
    rng = random.Random(3)
    now = 0.0
    for _ in range(2000):
        now += 0.36
        decision = rollout.record("new", now, 1.0, ok=rng.random() > 0.05)
        rollout.record("old", now, 1.0, ok=rng.random() > 0.005)
        if decision == "rollback":
            break
    assert rollout.state is RolloutState.ROLLED_BACK
    assert rollout.share == 0.0
    assert rollout.reason.startswith("error rate")
    assert now < 60.0


def test_worse_latency_or_quality_rolls_back() -> None:
    slow = Rollout("old", "new", policy=RolloutPolicy(min_calls=20), stages=(0.5, 1.0))
    for i in range(60):
        slow.record("old", i, 1.0, ok=True)
        slow.record("new", i, 2.0, ok=True)
    assert slow.reason == "p95 2.00 s > 1.5 x incumbent 1.00 s"
    worse = Rollout("old", "new", policy=RolloutPolicy(min_calls=20), stages=(0.5, 1.0))
    for i in range(60):
        worse.record("old", i, 1.0, ok=True, utility=0.9)
        worse.record("new", i, 1.0, ok=True, utility=0.7)
    assert worse.state is RolloutState.ROLLED_BACK
    assert worse.reason.startswith("quality 0.70 < incumbent 0.90")
