"""relaybaton: an asyncio actor runtime for multi-agent, multi-model LLM work.

The everyday names are here; the parts live in ``relaybaton.runtime`` (the actor kernel),
``relaybaton.actors`` (agents) and ``relaybaton.adapters`` (models and stores).
"""

from relaybaton.actors import (
    Agent,
    AgentTool,
    FunctionTool,
    Handoff,
    Runtime,
    ToolContext,
    function_tool,
    handoff,
    open_runtime,
)
from relaybaton.adapters import ModelAdapter, ScriptedModel, SimulatedModel
from relaybaton.errors import RelaybatonError
from relaybaton.flow._compose import open_flow
from relaybaton.flow._file import FlowFile, load_flow, parse_flow
from relaybaton.runtime import FakeClock, TurnResult, open_system

__all__ = [
    "Agent",
    "AgentTool",
    "FakeClock",
    "FlowFile",
    "FunctionTool",
    "Handoff",
    "ModelAdapter",
    "RelaybatonError",
    "Runtime",
    "ScriptedModel",
    "SimulatedModel",
    "ToolContext",
    "TurnResult",
    "__version__",
    "function_tool",
    "handoff",
    "load_flow",
    "open_flow",
    "open_runtime",
    "open_system",
    "parse_flow",
]

__version__ = "0.1.0"
