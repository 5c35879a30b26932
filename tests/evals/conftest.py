"""Fixtures for the evaluation tests: a two-agent refund flow on a scripted model.

The flow is built here, not taken from ``examples/``, so these tests do not depend on the
wording of the example flows or of the simulated model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from relaybaton import Agent, Runtime, handoff, open_runtime
from relaybaton.actors import FunctionTool
from relaybaton.adapters import ModelRequest, ToolResultMessage, UserMessage
from relaybaton.testing import ScriptedModel, tool_call


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio: the runtime is built on its event loop."""
    return "asyncio"


def _last_user(request: ModelRequest) -> str:
    return next(m.text for m in reversed(request.messages) if isinstance(m, UserMessage))


def script(request: ModelRequest) -> object:
    """Triage hands refunds to the refund agent; the refund agent refunds the amount asked."""
    last = request.messages[-1]
    text = _last_user(request)
    if "refund" not in request.instructions:
        if "refund" in text and not isinstance(last, ToolResultMessage):
            return tool_call("transfer_to_refund")
        return f"Hello! You said: {text}"
    if isinstance(last, ToolResultMessage) and last.name == "issue_refund":
        return f"Done: {last.content}"
    amount = float(text.split("$")[-1].split()[0]) if "$" in text else 10.0
    return tool_call("issue_refund", f"call-{amount:g}", order_id="A1", amount=amount)


def refund_flow(rule: str | bool) -> Agent:
    """Triage → refund, whose ``issue_refund`` tool waits for a person under ``rule``."""

    def issue_refund(order_id: str, amount: float) -> str:
        """Refund an order."""
        if amount > 1000:
            raise ValueError("amount over the limit")
        return f"refunded ${amount:g} on {order_id}"

    refund = Agent(
        name="refund",
        model="m",
        instructions="You handle refund requests.",
        tools=(FunctionTool(issue_refund, needs_approval=rule),),
    )
    return Agent(
        name="triage", model="m", instructions="Route the user.", handoffs=(handoff(refund),)
    )


def runtime_factory(
    rule: str | bool = "amount > 100", *, cost: float = 0.001
) -> Callable[[], AbstractAsyncContextManager[Runtime]]:
    """Opens a fresh runtime of the refund flow (``rule``: when a refund waits for a person)."""

    @asynccontextmanager
    async def opened() -> AsyncIterator[Runtime]:
        model = ScriptedModel(script, cost_per_call=cost, keep_requests=False)
        async with open_runtime(refund_flow(rule), models={"m": model}) as runtime:
            yield runtime

    return opened
