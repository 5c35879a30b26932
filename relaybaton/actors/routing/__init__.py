"""Model routing: slots, the router and its rules, the learned router, health, the model
supervisor, rollouts and shadow traffic.

Exported are what a program routing from Python needs: ``ModelSlot`` and its candidates
(``Candidate``), the ``Router`` with its rules (``Rule``), ``Budgets``, ``LearnedRouter``
(graded on ``TaskFeatures``) and ``HeuristicClassifier``, the ``HealthBoard`` with its
``BreakerPolicy``, the model supervisor (``open_model_supervisor``, its
``SupervisorPolicy`` and the ``SwapEvent`` it publishes), and ``Rollout`` with its
``RolloutPolicy``. Breakers, decisions, shadow runners and the rule checker are internals.
"""

from relaybaton.actors.routing._bandit import LearnedRouter
from relaybaton.actors.routing._breaker import BreakerPolicy
from relaybaton.actors.routing._features import HeuristicClassifier, TaskFeatures
from relaybaton.actors.routing._health import HealthBoard
from relaybaton.actors.routing._rollout import Rollout, RolloutPolicy
from relaybaton.actors.routing._router import Budgets, Candidate, Router
from relaybaton.actors.routing._rules import Rule
from relaybaton.actors.routing._slot import ModelSlot
from relaybaton.actors.routing._supervisor import (
    SupervisorPolicy,
    SwapEvent,
    open_model_supervisor,
)

__all__ = [
    "BreakerPolicy",
    "Budgets",
    "Candidate",
    "HealthBoard",
    "HeuristicClassifier",
    "LearnedRouter",
    "ModelSlot",
    "Rollout",
    "RolloutPolicy",
    "Router",
    "Rule",
    "SupervisorPolicy",
    "SwapEvent",
    "TaskFeatures",
    "open_model_supervisor",
]
