"""Model routing: slots, the router and its rules, the learned router, breakers, health, the
model supervisor, rollouts and shadow traffic.
"""

from relaybaton.actors.routing._bandit import LearnedRouter
from relaybaton.actors.routing._breaker import Breaker, BreakerPolicy, BreakerState
from relaybaton.actors.routing._features import HeuristicClassifier, SlotClassifier, TaskFeatures
from relaybaton.actors.routing._health import HealthBoard
from relaybaton.actors.routing._rollout import Rollout, RolloutPolicy, RolloutState
from relaybaton.actors.routing._router import Budgets, Candidate, Decision, Router
from relaybaton.actors.routing._rules import Rule, check_rules
from relaybaton.actors.routing._slot import ModelSlot
from relaybaton.actors.routing._supervisor import (
    ModelSupervisor,
    SupervisorPolicy,
    SwapEvent,
    open_model_supervisor,
)

__all__ = [
    "Breaker",
    "BreakerPolicy",
    "BreakerState",
    "Budgets",
    "Candidate",
    "Decision",
    "HealthBoard",
    "HeuristicClassifier",
    "LearnedRouter",
    "ModelSlot",
    "ModelSupervisor",
    "Rollout",
    "RolloutPolicy",
    "RolloutState",
    "Router",
    "Rule",
    "SlotClassifier",
    "SupervisorPolicy",
    "SwapEvent",
    "TaskFeatures",
    "check_rules",
    "open_model_supervisor",
]
