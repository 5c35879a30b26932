"""No model output moves money the customer-service rules forbid.

The refund agent of ``examples/customer_service.toml`` runs on a model scripted at random:
any sequence of steps, each calling any of its tools (alone or together) with any order id
(known, unknown, in the wrong case) and any amount, or answering. Whatever it does,
``issue_refund`` never pays for an unknown order, never more than the order's total, and
never more than $100 without a person's approval (nobody approves here, so never).
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaybaton.actors import FunctionTool, open_runtime, wait_for_turn
from relaybaton.adapters import ModelRequest, ToolCall
from relaybaton.flow import load_flow
from relaybaton.flow._compose import build_agents
from relaybaton.testing import ScriptedModel, ScriptItem, tool_call

FLOW = load_flow(Path(__file__).resolve().parents[2] / "examples" / "customer_service.toml")
AGENTS = build_agents(FLOW)
_TOOL = next(t for t in AGENTS["refund"].tools if t.name == "issue_refund")
assert isinstance(_TOOL, FunctionTool)
TOOLS = sys.modules[_TOOL.fn.__module__]  # the example's module: its order book and refunds
ORDERS: dict[str, dict[str, float]] = TOOLS._ORDERS

_ids = st.sampled_from(["AB-1234", "CD-5678", "ZZ-9999", "ab-1234", "AB-12345", ""])
_amounts = st.floats(min_value=0.01, max_value=1000, allow_nan=False).map(lambda a: round(a, 2))
_call = st.one_of(
    st.builds(lambda i: ("lookup_order", {"order_id": i}), _ids),
    st.just(("check_refund_policy", {"input": "may I refund this?"})),
    st.builds(lambda i, a: ("issue_refund", {"order_id": i, "amount": a}), _ids, _amounts),
)
_step = st.one_of(st.just("I am done."), st.lists(_call, min_size=1, max_size=3))


async def _run(steps: list[object]) -> dict[str, tuple[str, float]]:
    TOOLS.REFUNDS.clear()
    script = iter(steps)
    counter = iter(range(10_000))

    def answer(request: ModelRequest) -> ScriptItem:
        if request.metadata.agent == "policy":
            return "Refunds are allowed within 30 days of delivery."
        step = next(script, "I am done.")
        if isinstance(step, str):
            return step
        calls: list[ToolCall] = []
        for name, arguments in step:  # type: ignore[attr-defined]
            calls.append(tool_call(name, f"call_{next(counter)}", **arguments))
        return calls

    model = ScriptedModel(answer)
    async with open_runtime(
        AGENTS["refund"], agents=list(AGENTS.values()), models=model, max_turns=len(steps) + 2
    ) as runtime:
        future = runtime.submit("c1", "Please refund my order.")
        await wait_for_turn(runtime.conversations, "c1", future)
    return dict(TOOLS.REFUNDS)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_step, min_size=1, max_size=6))
def test_no_scripted_model_makes_issue_refund_break_the_refund_rules(steps: list[object]) -> None:
    refunds = anyio.run(_run, steps)
    for order_id, amount in refunds.values():
        order = ORDERS.get(order_id)
        assert order is not None, f"refunded unknown order {order_id!r}"
        assert amount <= order["total"], f"refunded {amount} on a {order['total']} order"
        assert amount <= 100, f"refunded {amount} without a person's approval"
