"""A flow's `fallbacks` and `[supervisor]`: a failing model is failed over, from the flow file."""

from __future__ import annotations

import pytest

from relaybaton.actors.routing import ModelSlot
from relaybaton.adapters import ModelCallRecord
from relaybaton.errors import FlowError
from relaybaton.flow import open_flow, parse_flow

pytestmark = pytest.mark.anyio

FLOW = """
[flow]
entry = "a"

[models.general]
model = "simulated:flaky"
latency_ms = 1
error_rate = 1.0
fallbacks = ["simulated:steady"]

[supervisor]
consecutive_failures = 2
min_calls = 2
open_s = 30

[[agents]]
name = "a"
model = "general"
instructions = "Knowledge: steady answers."
"""


async def test_a_model_that_always_fails_is_failed_over_to_its_fallback() -> None:
    records: list[ModelCallRecord] = []
    async with open_flow(parse_flow(FLOW), gc_young_threshold=None) as runtime:
        slot = runtime.slots["general"]
        assert isinstance(slot, ModelSlot)
        slot.listeners.append(records.append)
        results = [await runtime.send("c", f"hello {i}") for i in range(4)]
    assert [r.text for r in results] == ["steady answers."] * 4
    tried = [(r.adapter, r.outcome) for r in records]
    assert ("simulated:flaky", "ModelOverloadedError") in tried
    # Once its breaker opened, the failing model is not even tried any more.
    assert tried[-1] == ("simulated:steady", "ok")
    assert sum(1 for a, _ in tried if a == "simulated:flaky") <= 3


def test_a_supervisor_setting_with_a_typo_is_named_with_the_fix() -> None:
    with pytest.raises(FlowError) as caught:
        parse_flow(FLOW.replace("open_s", "opn_s"))
    assert 'supervisor: unknown field `opn_s` (did you mean "open_s"?)' in str(caught.value)


def test_a_fallback_that_is_not_a_model_id_is_refused() -> None:
    with pytest.raises(FlowError, match=r'models.general.fallbacks\[0\]: "steady" is not'):
        parse_flow(FLOW.replace('"simulated:steady"', '"steady"'))
