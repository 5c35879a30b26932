"""The flow file's ``[supervisor]`` table: the breakers' policy and the utility rule's.

The breaker fields are ``BreakerPolicy``'s (p95, error rate, probes, ...). The ``utility_*``
fields switch on the supervisor's utility rule, fed by grades of live traffic (``[evals]
sample``) and by users' feedback::

    [supervisor]
    utility_floor = 0.8          # escalate a slot whose mean grade drops below this
    utility_min_graded = 20      # ... over at least this many grades
    utility_window_s = 600       # ... of the last ten minutes
    utility_margin = 0.05        # a probed model stays once it grades >= floor + margin

Without ``utility_floor`` the rule is off (grades are still counted and exported).
"""

from __future__ import annotations

from relaybaton.actors.routing import BreakerPolicy, SupervisorPolicy
from relaybaton.errors import FlowProblem

__all__ = ["SupervisorConfig", "check_supervisor", "supervisor_policy_of"]


class SupervisorConfig(BreakerPolicy, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[supervisor]`` table: ``BreakerPolicy``'s fields and the utility rule's."""

    utility_floor: float | None = None
    utility_min_graded: int = 20
    utility_window_s: float = 600.0
    utility_window: int = 200
    utility_margin: float = 0.05
    utility_cooldown_s: float = 60.0
    utility_probe_after_s: float = 300.0
    utility_probe_backoff: float = 2.0
    utility_max_probe_after_s: float = 3600.0


def check_supervisor(config: SupervisorConfig | None) -> list[FlowProblem]:
    """Every out-of-range value of the utility rule, with its path."""
    if config is None:
        return []
    problems: list[FlowProblem] = []
    if config.utility_floor is not None and not 0.0 <= config.utility_floor <= 1.0:
        problems.append(
            FlowProblem("supervisor.utility_floor", "must be within 0..1 (a mean grade)")
        )
    if not 0.0 <= config.utility_margin <= 1.0:
        problems.append(FlowProblem("supervisor.utility_margin", "must be within 0..1"))
    for name in ("utility_min_graded", "utility_window"):
        if getattr(config, name) < 1:
            problems.append(FlowProblem(f"supervisor.{name}", "must be at least 1"))
    for name in ("utility_window_s", "utility_probe_after_s", "utility_max_probe_after_s"):
        if getattr(config, name) <= 0:
            problems.append(FlowProblem(f"supervisor.{name}", "must be > 0 seconds"))
    if config.utility_probe_backoff < 1:
        problems.append(FlowProblem("supervisor.utility_probe_backoff", "must be at least 1"))
    return problems


def supervisor_policy_of(config: SupervisorConfig | None) -> SupervisorPolicy:
    """The supervisor's policy; without ``utility_floor`` the utility rule never trips."""
    if config is None:
        return SupervisorPolicy(utility_floor=0.0)
    return SupervisorPolicy(
        utility_floor=config.utility_floor if config.utility_floor is not None else 0.0,
        min_graded=config.utility_min_graded,
        cooldown_s=config.utility_cooldown_s,
        utility_margin=config.utility_margin,
        utility_window_s=config.utility_window_s,
        utility_window=config.utility_window,
        probe_after_s=config.utility_probe_after_s,
        probe_backoff=config.utility_probe_backoff,
        max_probe_after_s=config.utility_max_probe_after_s,
    )
