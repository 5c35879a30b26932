"""What an agent actor runs on: its agent compiled once, and the context its flow shares.

Kept apart from the turn loop (``_agent_actor.py``) because the ``Runtime`` builds these
once per flow, while the actor reads them on every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import final

from relaybaton.actors._agent import Agent, AgentTool, Handoff
from relaybaton.actors._fork_models import ForkModels
from relaybaton.actors._guarding import Guards
from relaybaton.actors._schema_tool import SchemaTool
from relaybaton.actors._tools import FunctionTool
from relaybaton.actors.routing._slot import ModelSlot
from relaybaton.adapters import ToolSpec
from relaybaton.runtime import Clock, Conversations

__all__ = ["CompiledAgent", "FlowContext"]


@final
@dataclass(slots=True)
class FlowContext:
    """What the agent actors of one runtime share."""

    conversations: Conversations
    slots: dict[str, ModelSlot]
    clock: Clock
    agents: dict[str, CompiledAgent] = field(default_factory=dict)
    fork_models: ForkModels = field(default_factory=ForkModels)  # what forks chose


@final
class CompiledAgent:
    """An ``Agent`` prepared once: its tool specs and lookup tables."""

    __slots__ = (
        "agent",
        "agent_tools",
        "function_tools",
        "guards",
        "handoffs",
        "handoffs_by_target",
        "owner_specs",
        "slot",
        "tool_specs",
    )

    def __init__(self, agent: Agent, slot: ModelSlot) -> None:
        self.agent = agent
        self.slot = slot  # the slot object is stable; a swap changes what it holds
        self.function_tools: dict[str, FunctionTool | SchemaTool] = {}
        self.agent_tools: dict[str, AgentTool] = {}
        for tool in agent.tools:
            if isinstance(tool, FunctionTool | SchemaTool):
                self.function_tools[tool.name] = tool
            else:
                self.agent_tools[tool.name] = tool
        edges = agent.handoff_edges
        self.handoffs: dict[str, Handoff] = {h.tool_name: h for h in edges}
        self.handoffs_by_target: dict[str, Handoff] = {h.target: h for h in edges}
        self.tool_specs: tuple[ToolSpec, ...] = tuple(t.spec for t in agent.tools)
        self.owner_specs: tuple[ToolSpec, ...] = self.tool_specs + tuple(h.spec for h in edges)
        self.guards = Guards(agent.guardrails)
