"""A conversation's budget holds, and its refusal is a reply, not a crash.

A customer keeps asking on a flow whose slot has a $0.004 budget per conversation: each
model call is checked with its expected cost before it is made, so the spend never passes
the budget by more than one call's estimate; the call that would pass it is refused with a
reply the customer can read and a traced event, and no actor crashes or letter goes dead.
"""

from __future__ import annotations

import pytest

from relaybaton.actors import ModelCallEvent
from relaybaton.flow import open_flow, parse_flow

pytestmark = pytest.mark.anyio

BUDGET = 0.004
FLOW = f"""
[flow]
entry = "assistant"

[models.assistant]
model = "simulated:general"
latency_ms = 0

[models.assistant.routing]
budget_usd_per_conversation = {BUDGET}

[[models.assistant.routing.candidates]]
name = "general"
model = "simulated:general"
tier = 1
price_in_per_1k = 0.002
price_out_per_1k = 0.004

[[agents]]
name = "assistant"
model = "assistant"
instructions = "Knowledge: Our shop opens at nine."
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_budget_holds_and_its_refusal_is_a_clear_reply() -> None:
    async with open_flow(parse_flow(FLOW), gc_young_threshold=None) as runtime:
        refused = None
        for index in range(40):
            result = await runtime.send("c1", f"When does the shop open? ({index})")
            if result.error:
                refused = result
                break
        conversation = runtime.conversation("c1")
        assert conversation is not None
        dead = runtime.system.dead_letters.total
    assert refused is not None, "the budget never refused a call"
    assert refused.error is not None
    assert refused.error.startswith(
        "this conversation has reached its spending limit, so I can't answer further here; "
        "please start a new conversation (budget would be passed by the next call"
    )
    spent = conversation.usage_total().cost_usd
    # One call's estimate here: ~30 input tokens at $0.002/1K and 256 answer tokens at
    # $0.004/1K, about $0.00108.
    assert spent <= BUDGET
    events = [e for e in conversation.events or [] if isinstance(e, ModelCallEvent)]
    assert events[-1].outcome == "BudgetExceededError"
    assert dead == 0
