"""Hypothesis settings for the state machines, applied per test (not loaded globally).

The default keeps the whole directory at about a minute for CI;
``RELAYBATON_PROPERTIES=thorough`` runs many more examples for a local soak.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_THOROUGH = os.environ.get("RELAYBATON_PROPERTIES") == "thorough"


def machine_settings(max_examples: int, steps: int) -> settings:
    """Settings for one state machine: ``max_examples`` runs of up to ``steps`` rules."""
    scale = 10 if _THOROUGH else 1
    return settings(
        max_examples=max_examples * scale,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
