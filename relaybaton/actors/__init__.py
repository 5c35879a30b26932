"""Agents built on the kernel: the turn loop, tools, handoffs, slots and the runtime."""

from relaybaton.actors._agent import (
    Agent,
    AgentTool,
    Handoff,
    HistoryFilter,
    Tool,
    handoff,
    keep_last_user_message,
    strip_tool_calls,
)
from relaybaton.actors._agent_actor import AgentActor, CompiledAgent, FlowContext
from relaybaton.actors._events import AgentEvent, ModelCallEvent, ReplyDeltaEvent, ToolCallEvent
from relaybaton.actors._runtime import Runtime, collect_agents, open_runtime
from relaybaton.actors._tools import FunctionTool, ToolContext, function_tool
from relaybaton.actors.routing import ModelSlot

__all__ = [
    "Agent",
    "AgentActor",
    "AgentEvent",
    "AgentTool",
    "CompiledAgent",
    "FlowContext",
    "FunctionTool",
    "Handoff",
    "HistoryFilter",
    "ModelCallEvent",
    "ModelSlot",
    "ReplyDeltaEvent",
    "Runtime",
    "Tool",
    "ToolCallEvent",
    "ToolContext",
    "collect_agents",
    "function_tool",
    "handoff",
    "keep_last_user_message",
    "open_runtime",
    "strip_tool_calls",
]
