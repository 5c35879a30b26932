"""What the runtime recorded for one evaluated conversation, in the form graders read.

A ``Trace`` is built from the live ``Conversation`` (its trace events, ledger, ownership and
approvals) and the turns' results, so a grader asserts on what happened — who held the
baton, which tools ran with which arguments, whether a person was asked — not only on the
words of the reply. The same trace is built for ``relaybaton eval`` and for a live
conversation graded in ``serve``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import msgspec

from relaybaton.actors import ModelCallEvent, ToolCallEvent
from relaybaton.adapters import AssistantMessage, UserMessage
from relaybaton.runtime import Conversation, TurnResult
from relaybaton.runtime.messages import (
    ApprovalDecidedEvent,
    ApprovalRequestedEvent,
    HandoffEvent,
    ReplyEvent,
)

__all__ = ["Trace", "TraceTurn", "build_trace", "live_trace"]


class TraceTurn(msgspec.Struct, frozen=True, kw_only=True):
    """One user message and what came of it."""

    user: str
    replies: tuple[str, ...]
    agents: tuple[str, ...]
    error: str | None
    latency_s: float


class Trace(msgspec.Struct, frozen=True, kw_only=True):
    """One conversation as graders see it; ``events`` are the runtime's own trace events."""

    conversation_id: str
    turns: tuple[TraceTurn, ...]
    events: tuple[msgspec.Struct, ...]
    owner: str | None
    status: str
    cost_usd: float
    input_tokens: int
    output_tokens: int
    waiting_for_a_person: bool = False

    @property
    def reply(self) -> str:
        """The last turn's answer (all its replies, one per line); empty if it failed."""
        return "\n".join(self.turns[-1].replies) if self.turns else ""

    @property
    def latency_s(self) -> float:
        """The slowest turn's latency: what a user waited longest for."""
        return max((t.latency_s for t in self.turns), default=0.0)

    @property
    def errors(self) -> tuple[str, ...]:
        """The errors that ended turns."""
        return tuple(t.error for t in self.turns if t.error)

    def model_calls(self) -> list[ModelCallEvent]:
        """The model calls, in order."""
        return [e for e in self.events if isinstance(e, ModelCallEvent)]

    def tool_calls(self) -> list[ToolCallEvent]:
        """The tool calls (functions and agents as tools), in order."""
        return [e for e in self.events if isinstance(e, ToolCallEvent)]

    def handoffs(self) -> list[HandoffEvent]:
        """The handoffs (not the returns of a baton), in order."""
        return [e for e in self.events if isinstance(e, HandoffEvent) and e.action == "handoff"]

    def approvals(self) -> list[ApprovalRequestedEvent]:
        """The approval requests, in order."""
        return [e for e in self.events if isinstance(e, ApprovalRequestedEvent)]

    def decisions(self) -> list[ApprovalDecidedEvent]:
        """The decisions on approval requests, in order."""
        return [e for e in self.events if isinstance(e, ApprovalDecidedEvent)]


def arguments_of(call: ToolCallEvent) -> dict[str, object]:
    """A tool call's arguments as an object (empty when they are not a JSON object)."""
    try:
        value = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def build_trace(
    conversation: Conversation,
    messages: Sequence[str],
    results: Sequence[TurnResult | None],
    latencies: Sequence[float],
) -> Trace:
    """The trace of ``conversation`` after ``messages`` were sent and gave ``results``.

    A ``None`` result is a turn that never ended (it waits for a person's decision).
    """
    turns: list[TraceTurn] = []
    for index, text in enumerate(messages):
        result = results[index] if index < len(results) else None
        latency = latencies[index] if index < len(latencies) else 0.0
        if result is None:
            turns.append(
                TraceTurn(user=text, replies=(), agents=(), error="unfinished", latency_s=latency)
            )
            continue
        turns.append(
            TraceTurn(
                user=text,
                replies=tuple(r.text for r in result.replies),
                agents=tuple(r.agent for r in result.replies),
                error=result.error,
                latency_s=latency,
            )
        )
    total = conversation.usage_total()
    events = tuple(
        e
        for e in conversation.events or ()
        if isinstance(
            e,
            ModelCallEvent
            | ToolCallEvent
            | HandoffEvent
            | ReplyEvent
            | ApprovalRequestedEvent
            | ApprovalDecidedEvent,
        )
    )
    return Trace(
        conversation_id=conversation.id,
        turns=tuple(turns),
        events=events,
        owner=conversation.owner,
        status=conversation.status.value,
        cost_usd=total.cost_usd,
        input_tokens=total.input_tokens,
        output_tokens=total.output_tokens,
        waiting_for_a_person=conversation.waiting_for_a_person,
    )


def live_trace(conversation: Conversation, events: Sequence[msgspec.Struct]) -> Trace:
    """The trace of a live conversation from its transcript and the events seen of it.

    Turns are read from the transcript (a user message, then the answers without tool
    calls); a turn's latency is the time from its first model call to its reply event.
    """
    turns: list[TraceTurn] = []
    user: str | None = None
    replies: list[tuple[str, str]] = []
    for message in conversation.transcript:
        if isinstance(message, UserMessage):
            if user is not None:
                turns.append(_turn(user, replies))
            user, replies = message.text, []
        elif isinstance(message, AssistantMessage) and message.text and not message.tool_calls:
            replies.append((message.agent, message.text))
    if user is not None:
        turns.append(_turn(user, replies))
    started = next((e.at for e in events if isinstance(e, ModelCallEvent)), None)
    ended = next((e.at for e in reversed(events) if isinstance(e, ReplyEvent)), None)
    if turns and started is not None and ended is not None:
        last = turns[-1]
        turns[-1] = TraceTurn(
            user=last.user, replies=last.replies, agents=last.agents, error=last.error,
            latency_s=max(0.0, ended - started),
        )  # fmt: skip
    total = conversation.usage_total()
    return Trace(
        conversation_id=conversation.id,
        turns=tuple(turns),
        events=tuple(events),
        owner=conversation.owner,
        status=conversation.status.value,
        cost_usd=total.cost_usd,
        input_tokens=total.input_tokens,
        output_tokens=total.output_tokens,
        waiting_for_a_person=conversation.waiting_for_a_person,
    )


def _turn(user: str, replies: list[tuple[str, str]]) -> TraceTurn:
    return TraceTurn(
        user=user,
        replies=tuple(text for _, text in replies),
        agents=tuple(agent for agent, _ in replies),
        error=None,
        latency_s=0.0,
    )
