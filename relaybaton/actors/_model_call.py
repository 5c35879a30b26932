"""One model call of an agent: through its slot, streamed to listeners or whole, traced.

Kept apart from the turn loop, which calls it for the owner and for an agent used as a
tool alike. A call the slot's budget refuses (``BudgetExceededError``: checked before the
call with its expected cost) is traced as a model call with that outcome and raised for the
turn loop to answer in words, so a refusal is never a crash.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from relaybaton.actors._compiled import CompiledAgent, FlowContext
from relaybaton.actors._events import ModelCallEvent, ReplyDeltaEvent, failed_model_calls
from relaybaton.actors.routing._router import Decision
from relaybaton.actors.routing._slot import ModelSlot
from relaybaton.adapters import AssistantMessage, ModelRequest
from relaybaton.errors import BudgetExceededError
from relaybaton.runtime import Clock, OwnerHandle, ToolScope
from relaybaton.runtime._journal_events import Charged

__all__ = ["budget_reply", "call_model"]


def budget_reply(exc: BudgetExceededError) -> str:
    """What the user reads when a budget refuses the next model call."""
    return (
        "this conversation has reached its spending limit, so I can't answer further here; "
        f"please start a new conversation ({exc})"
    )


def _deltas(owner: OwnerHandle, agent: str, clock: Clock) -> Callable[[str], None]:
    epoch = owner.epoch

    def publish(text: str) -> None:
        owner.record(ReplyDeltaEvent(agent=agent, text=text, epoch=epoch, at=clock.now()))

    return publish


async def call_model(
    compiled: CompiledAgent,
    flow: FlowContext,
    request: ModelRequest,
    sink: OwnerHandle | ToolScope,
    *,
    slot: ModelSlot | None = None,
    chosen: Decision | None = None,
) -> tuple[AssistantMessage, Charged]:
    """Call the agent's slot; return the answer (as the agent's) and its usage.

    ``slot`` replaces the agent's slot and ``chosen`` is the trace's route when no router
    decided: a fork's choice (``_fork_choice.py``).
    """
    agent = compiled.agent.name
    slot = slot or compiled.slot
    clock = flow.clock
    conversations = flow.conversations
    tracing = conversations.observed
    started = clock.now() if tracing else 0.0
    routes: list[Decision] | None = [] if tracing else None
    try:
        if (
            conversations.stream_replies
            and isinstance(sink, OwnerHandle)
            and not compiled.guards.output  # the user sees only a screened reply
            and (
                conversations.stream_filter is None  # someone watches this conversation live
                or conversations.stream_filter(sink.conversation_id)
            )
        ):
            # Someone listens (the HTTP service): stream, so the user sees the answer as it
            # comes. Only the owner's text is the user's; an agent used as a tool stays whole.
            response = await slot.stream(
                request, agent=agent, on_text=_deltas(sink, agent, clock), routes=routes
            )
        else:
            response = await slot.call(request, agent=agent, routes=routes)
    except BudgetExceededError:
        if tracing:
            sink.record(
                ModelCallEvent(
                    agent=agent,
                    slot=slot.name,
                    model="",
                    latency_s=0.0,
                    outcome="BudgetExceededError",
                    conversation_id=request.metadata.conversation_id,
                    at=started,
                )
            )
        raise
    finally:
        if routes:  # every failed attempt is in the trace, whatever came after it
            conversation_id = request.metadata.conversation_id
            for failed in failed_model_calls(routes, agent, slot.name, conversation_id, started):
                sink.record(failed)
    usage = response.usage
    model = response.model or slot.adapter.name
    charge = Charged(
        agent=agent,
        model=model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=usage.cost_usd,
        estimated=usage.estimated,
    )
    if tracing:
        sink.record(
            ModelCallEvent(
                agent=agent,
                slot=slot.name,
                model=model,
                latency_s=clock.now() - started,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=usage.cost_usd,
                conversation_id=request.metadata.conversation_id,
                at=started,
                route=routes[-1] if routes else chosen,
                usage_estimated=usage.estimated,
            )
        )
    message = response.message
    if message.agent != agent:
        message = msgspec.structs.replace(message, agent=agent)
    return message, charge
