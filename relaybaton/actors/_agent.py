"""Agents as configuration: who they are, which model slot, which tools, whom they hand to."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, final

from relaybaton.actors._guardrail import Guardrail
from relaybaton.actors._schema_tool import SchemaTool
from relaybaton.actors._tools import FunctionTool
from relaybaton.adapters import AssistantMessage, ChatMessage, ToolResultMessage, ToolSpec
from relaybaton.errors import ConfigError

__all__ = [
    "Agent",
    "AgentTool",
    "Handoff",
    "HistoryFilter",
    "Tool",
    "handoff",
    "keep_last_user_message",
    "strip_tool_calls",
]

HistoryFilter = Callable[[Sequence[ChatMessage]], Sequence[ChatMessage]]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def strip_tool_calls(history: Sequence[ChatMessage]) -> Sequence[ChatMessage]:
    """A history filter: drop tool calls and their results, keep the words."""
    kept: list[ChatMessage] = []
    for message in history:
        if isinstance(message, ToolResultMessage):
            continue
        if isinstance(message, AssistantMessage) and message.tool_calls:
            if message.text:
                kept.append(AssistantMessage(text=message.text, agent=message.agent))
            continue
        kept.append(message)
    return kept


def keep_last_user_message(history: Sequence[ChatMessage]) -> Sequence[ChatMessage]:
    """A history filter: the receiver sees only the user message it must answer."""
    for message in reversed(history):
        if not isinstance(message, AssistantMessage | ToolResultMessage):
            return [message]
    return []


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Handoff:
    """A declared edge: the owner may pass the baton to ``agent`` with this tool.

    ``agent`` is the receiving ``Agent``, or its name when the flow has cycles (an expert
    that can hand back to triage); names are resolved when the runtime opens.
    """

    agent: Agent | str
    tool_name: str
    tool_description: str
    return_to_sender: bool = False
    lease_turns: int = 1
    input_filter: HistoryFilter | None = None

    @property
    def target(self) -> str:
        """The receiving agent's name."""
        return self.agent if isinstance(self.agent, str) else self.agent.name

    @property
    def spec(self) -> ToolSpec:
        """The tool the model sees for this handoff."""
        return ToolSpec(
            name=self.tool_name,
            description=self.tool_description,
            parameters={
                "type": "object",
                "properties": {
                    "reason": {
                        "type": "string",
                        "description": "Why the conversation goes to this agent.",
                    }
                },
            },
        )


def handoff(
    agent: Agent | str,
    *,
    tool_name: str | None = None,
    tool_description: str | None = None,
    return_to_sender: bool = False,
    lease_turns: int = 1,
    input_filter: HistoryFilter | None = None,
) -> Handoff:
    """Declare a handoff to ``agent``.

    Args:
        agent: the receiver, or its name.
        tool_name: the tool the model calls (default ``transfer_to_<name>``).
        tool_description: what the model reads to decide (default: the agent's description).
        return_to_sender: give the receiver a lease; the baton comes back after it.
        lease_turns: how many finished user turns the lease lasts.
        input_filter: what part of the history the receiver's model sees.
    """
    name = agent if isinstance(agent, str) else agent.name
    described = "" if isinstance(agent, str) else agent.description
    return Handoff(
        agent=agent,
        tool_name=tool_name or f"transfer_to_{name}",
        tool_description=tool_description
        or described
        or f"Hand the conversation to the {name} agent.",
        return_to_sender=return_to_sender,
        lease_turns=lease_turns,
        input_filter=input_filter,
    )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AgentTool:
    """Another agent called as a tool: request/reply, the caller keeps the baton."""

    agent: Agent | str
    name: str
    description: str
    timeout: float | None = 300.0

    @property
    def target(self) -> str:
        """The called agent's name."""
        return self.agent if isinstance(self.agent, str) else self.agent.name

    @property
    def spec(self) -> ToolSpec:
        """The tool the model sees: one ``input`` string for the callee."""
        return ToolSpec(
            name=self.name,
            description=self.description,
            parameters={
                "type": "object",
                "properties": {
                    "input": {"type": "string", "description": "The request for the agent."}
                },
                "required": ["input"],
            },
        )


Tool = FunctionTool | SchemaTool | AgentTool


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """An agent's configuration; the runtime runs it as one activation per conversation.

    Attributes:
        name: unique in a flow; letters, digits, ``_`` and ``-``.
        instructions: the system prompt.
        model: the name of the model slot the agent calls.
        description: what other agents (and handoff tools) are told about it.
        tools: function tools, schema tools (memory, MCP) and agents-as-tools.
        handoffs: the agents this one may pass the baton to (``Agent``, name, or
            ``handoff()``).
        max_turns: model turns this agent may take for one user message.
        guardrails: checks on the user's message, the agent's reply and its tool calls
            (``Guardrail``, ``create_guardrail``).
        output_schema: a JSON Schema its answer must fit when it is used as a tool (the
            answer is JSON; an answer that does not fit is sent back once with the
            problems, then the call fails).
    """

    name: str
    instructions: str = ""
    model: str = "default"
    description: str = ""
    tools: tuple[Tool, ...] = ()
    handoffs: tuple[Handoff | Agent | str, ...] = field(default=())
    max_turns: int = 10
    guardrails: tuple[Guardrail, ...] = ()
    output_schema: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(
                f"agent name {self.name!r} must start with a letter and use only letters, "
                "digits, '_' and '-' (at most 64 characters)"
            )
        if self.max_turns < 1:
            raise ConfigError(f"agent {self.name!r}: max_turns must be at least 1")

    @property
    def handoff_edges(self) -> tuple[Handoff, ...]:
        """The handoffs, each as a ``Handoff``."""
        return tuple(h if isinstance(h, Handoff) else handoff(h) for h in self.handoffs)

    def as_tool(
        self, name: str | None = None, description: str | None = None, *, timeout: float = 300.0
    ) -> AgentTool:
        """Use this agent as a tool of another: it answers one request, keeping no baton."""
        return AgentTool(
            agent=self,
            name=name or self.name,
            description=description or self.description or f"Ask the {self.name} agent.",
            timeout=timeout,
        )
