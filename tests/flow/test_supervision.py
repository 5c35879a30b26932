"""The flow file's `[supervisor]` utility rule: accepted, checked, and given to the supervisor."""

from __future__ import annotations

import re

import pytest

from relaybaton.errors import FlowError
from relaybaton.flow import parse_flow
from relaybaton.flow._supervision import supervisor_policy_of

FLOW = """
[models.general]
model = "simulated:general"
fallbacks = ["simulated:general-fallback"]

[supervisor]
p95_s = 2.0
utility_floor = 0.8
utility_min_graded = 10
utility_window_s = 300
utility_margin = 0.1

[[agents]]
name = "triage"
model = "general"
"""


def test_utility_floor_in_a_flow_file_is_accepted_and_reaches_the_supervisor_policy() -> None:
    flow = parse_flow(FLOW)
    assert flow.supervisor is not None
    assert flow.supervisor.p95_s == 2.0  # the breaker fields are still there
    policy = supervisor_policy_of(flow.supervisor)
    assert (policy.utility_floor, policy.min_graded, policy.utility_window_s) == (0.8, 10, 300)
    assert policy.utility_margin == 0.1


def test_without_a_utility_floor_the_rule_is_off() -> None:
    flow = parse_flow(FLOW.replace("utility_floor = 0.8\n", ""))
    assert supervisor_policy_of(flow.supervisor).utility_floor == 0.0
    assert supervisor_policy_of(None).utility_floor == 0.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("utility_floor = 1.5", "supervisor.utility_floor: must be within 0..1"),
        ("utility_min_graded = 0", "supervisor.utility_min_graded: must be at least 1"),
        ("utility_window_s = 0", "supervisor.utility_window_s: must be > 0 seconds"),
        ("utility_flor = 0.8", 'unknown field `utility_flor` (did you mean "utility_floor"?)'),
    ],
)
def test_a_bad_utility_rule_is_refused_with_its_path(change: str, message: str) -> None:
    key = change.split(" = ", maxsplit=1)[0]
    line = re.compile(rf"^{key} = .*$", re.MULTILINE)
    # Replace the field's line when the flow has it; else put the change in place of another.
    text = (
        line.sub(change, FLOW)
        if line.search(FLOW)
        else FLOW.replace("utility_margin = 0.1", change)
    )
    with pytest.raises(FlowError) as caught:
        parse_flow(text)
    assert message in str(caught.value)
