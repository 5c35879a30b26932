"""relaybaton: an asyncio actor runtime for multi-agent, multi-model LLM work.

The everyday names are here, the ones the README's examples use; the parts live in
``relaybaton.runtime`` (the actor kernel), ``relaybaton.adapters`` (model adapters),
``relaybaton.actors`` (agents, and model routing in ``relaybaton.actors.routing``),
``relaybaton.flow`` (flow files) and the packages above them. Test fakes are in
``relaybaton.testing``.
"""

from relaybaton.actors import (
    Agent,
    Guardrail,
    Runtime,
    ToolContext,
    ToolRules,
    create_guardrail,
    function_tool,
    handoff,
    open_runtime,
)
from relaybaton.adapters import ModelAdapter, SimulatedModel
from relaybaton.errors import RelaybatonError
from relaybaton.flow import load_flow, open_flow
from relaybaton.runtime import TurnResult, open_system

__all__ = [
    "Agent",
    "Guardrail",
    "ModelAdapter",
    "RelaybatonError",
    "Runtime",
    "SimulatedModel",
    "ToolContext",
    "ToolRules",
    "TurnResult",
    "__version__",
    "create_guardrail",
    "function_tool",
    "handoff",
    "load_flow",
    "open_flow",
    "open_runtime",
    "open_system",
]

__version__ = "0.1.0"
