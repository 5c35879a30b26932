"""Trace events of the agent layer (the kernel's own are in ``runtime.messages``)."""

from __future__ import annotations

import msgspec

from relaybaton.actors.routing._router import Decision
from relaybaton.runtime.messages import HandoffEvent, ReplyEvent

__all__ = [
    "AgentEvent",
    "GuardrailEvent",
    "ModelCallEvent",
    "ReplyDeltaEvent",
    "ToolCallEvent",
    "failed_model_calls",
]


class ModelCallEvent(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="kind", tag="model_call"
):
    """One model call: who asked, which model answered, how long, how many tokens, how much.

    ``outcome`` is ``ok`` or the error class name (``error`` then says what failed: a
    failed attempt before a retry or a failover is an event of its own); ``slot`` is the
    slot that routed it;
    ``route`` says which candidate took the call and why (the last attempt's decision: a
    rule, cost, the learned router, a budget step-down, a rollout arm, a failover), when
    the slot chooses among models.
    """

    agent: str
    slot: str
    model: str
    latency_s: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    outcome: str = "ok"
    conversation_id: str = ""
    at: float = 0.0
    route: Decision | None = None
    error: str = ""
    usage_estimated: bool = False  # the server gave no token counts: estimated from the text


class ToolCallEvent(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="kind", tag="tool_call"
):
    """One tool call; ``tool_kind`` is ``function`` or ``agent`` (an agent used as a tool)."""

    agent: str
    tool: str
    call_id: str
    tool_kind: str
    latency_s: float
    is_error: bool = False
    arguments: str = ""
    result: str = ""
    at: float = 0.0


class GuardrailEvent(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="kind", tag="guardrail"
):
    """One guardrail check: its name, stage and ``verdict`` (``passed``, ``blocked``,
    ``redacted``, or ``failed`` when the check itself raised, which blocks)."""

    guardrail: str
    stage: str
    agent: str
    verdict: str
    reason: str = ""
    tool: str = ""
    latency_s: float = 0.0
    at: float = 0.0


class ReplyDeltaEvent(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="kind", tag="reply_delta"
):
    """A piece of an owner's answer as the model streams it, before the ``reply`` event.

    Deltas are provisional: text a model streams before it decides to call a tool is
    streamed too. The ``reply`` event that ends the turn holds the answer.
    """

    agent: str
    text: str
    epoch: int
    at: float = 0.0


AgentEvent = (
    ModelCallEvent | ToolCallEvent | HandoffEvent | ReplyEvent | ReplyDeltaEvent | GuardrailEvent
)


def failed_model_calls(
    routes: list[Decision], agent: str, slot: str, conversation_id: str, at: float
) -> list[ModelCallEvent]:
    """One event per failed attempt of a model call, from the slot's route list."""
    return [
        ModelCallEvent(
            agent=agent,
            slot=slot,
            model=route.candidate,
            latency_s=route.latency_s,
            outcome=route.error.partition(":")[0],
            error=route.error,
            conversation_id=conversation_id,
            at=at,
            route=route,
        )
        for route in routes
        if route.error
    ]
