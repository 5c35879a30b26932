"""What an owner does next, read from the end of its conversation's transcript.

Kept apart from the turn loop so that the loop reads as the story of a turn; this is the
one function that says where a turn stands, for a fresh turn and a resumed one alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from relaybaton.actors._events import ToolCallEvent
from relaybaton.adapters import AssistantMessage, ToolCall, ToolResultMessage

__all__ = ["next_step", "refused_event"]


def refused_event(agent: str, call: ToolCall, result: ToolResultMessage) -> ToolCallEvent:
    """The trace event of a call refused before it ran (its rules, a rejection)."""
    return ToolCallEvent(
        agent=agent,
        tool=call.name,
        call_id=call.id,
        tool_kind="function",
        latency_s=0.0,
        is_error=True,
        arguments=call.arguments[:500],
        result=result.content[:500],
    )


def next_step(transcript: Sequence[msgspec.Struct], agent: str) -> str | list[ToolCall]:
    """What the owner does next: reply (the text), run calls (the list), or ask ([]).

    Read from the end of the transcript: this agent's last answer with calls that have no
    result yet means run them; its last answer without calls, not yet replied, means
    reply it; anything else (a user message, tool results all in) means ask the model.
    """
    last = transcript[-1] if transcript else None
    kind = type(last)
    if kind is AssistantMessage:  # the common cases first, without a scan
        message: AssistantMessage = last  # type: ignore[assignment]
        if message.agent != agent:
            return []
        return list(message.tool_calls) if message.tool_calls else message.text
    if kind is not ToolResultMessage:
        return []
    answered: set[str] = set()
    for item in reversed(transcript):
        if type(item) is ToolResultMessage:
            answered.add(item.call_id)
            continue
        if type(item) is AssistantMessage and item.agent == agent:
            return [c for c in item.tool_calls if c.id not in answered]
        break
    return []
