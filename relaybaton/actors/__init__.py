"""Agents built on the kernel: the turn loop, tools, handoffs and the runtime.

Exported are what a program defining agents needs (``Agent``, tools, handoffs and their
history filters, guardrails and tool rules, ``open_runtime`` and its ``Runtime``) and the
events a runtime reports, which the HTTP edge and the command line render. ``SchemaTool``
is the seam for tools defined by a JSON Schema (memory and MCP tools). Model routing is in
``relaybaton.actors.routing``.
"""

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
from relaybaton.actors._events import (
    AgentEvent,
    GuardrailEvent,
    ModelCallEvent,
    ReplyDeltaEvent,
    ToolCallEvent,
)
from relaybaton.actors._guardrail import Guardrail, GuardrailContext, GuardrailResult
from relaybaton.actors._guardrail_checks import create_guardrail
from relaybaton.actors._pause import Paused, wait_for_turn, waiting_reply
from relaybaton.actors._runtime import Runtime, open_runtime
from relaybaton.actors._schema_tool import SchemaTool
from relaybaton.actors._tool_rules import RecordedResult, ToolRules
from relaybaton.actors._tools import FunctionTool, ToolContext, function_tool

__all__ = [
    "Agent",
    "AgentEvent",
    "AgentTool",
    "FunctionTool",
    "Guardrail",
    "GuardrailContext",
    "GuardrailEvent",
    "GuardrailResult",
    "Handoff",
    "HistoryFilter",
    "ModelCallEvent",
    "Paused",
    "RecordedResult",
    "ReplyDeltaEvent",
    "Runtime",
    "SchemaTool",
    "Tool",
    "ToolCallEvent",
    "ToolContext",
    "ToolRules",
    "create_guardrail",
    "function_tool",
    "handoff",
    "keep_last_user_message",
    "open_runtime",
    "strip_tool_calls",
    "wait_for_turn",
    "waiting_reply",
]
