"""Everything that touches the outside world: model providers, stores, transports."""

from relaybaton.adapters._anthropic import AnthropicAdapter
from relaybaton.adapters._chat import (
    AssistantMessage,
    ChatMessage,
    ImagePart,
    ModelRequest,
    ModelResponse,
    RequestMetadata,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolResultMessage,
    ToolSpec,
    Usage,
    UserMessage,
)
from relaybaton.adapters._credentials import Secret
from relaybaton.adapters._factory import create_model_adapter
from relaybaton.adapters._gemini import GeminiAdapter
from relaybaton.adapters._graph_jsonl import export_memory_file, import_memory_file
from relaybaton.adapters._graph_sqlite import SqliteGraphStore, open_sqlite_graph_store
from relaybaton.adapters._graph_store import GraphStore, GraphTransaction
from relaybaton.adapters._graph_types import (
    AddedObservations,
    Entity,
    GraphPage,
    GraphView,
    Observation,
    ObservationAddition,
    ObservationDeletion,
    Provenance,
    Relation,
    to_wire,
)
from relaybaton.adapters._http import Timeouts
from relaybaton.adapters._metrics import MeteredAdapter, MetricsSink, ModelCallRecord
from relaybaton.adapters._openai import OpenAIChatAdapter
from relaybaton.adapters._pricing import ModelPrice, PriceTable
from relaybaton.adapters._protocol import Capabilities, ModelAdapter
from relaybaton.adapters._provider import ProviderAdapter
from relaybaton.adapters._redact import redact_processor, redact_text
from relaybaton.adapters._retry import ClockLike, RetryPolicy
from relaybaton.adapters._scripted import ScriptedModel, ScriptItem, tool_call
from relaybaton.adapters._simulated import SimulatedModel

__all__ = [
    "AddedObservations",
    "AnthropicAdapter",
    "AssistantMessage",
    "Capabilities",
    "ChatMessage",
    "ClockLike",
    "Entity",
    "GeminiAdapter",
    "GraphPage",
    "GraphStore",
    "GraphTransaction",
    "GraphView",
    "ImagePart",
    "MeteredAdapter",
    "MetricsSink",
    "ModelAdapter",
    "ModelCallRecord",
    "ModelPrice",
    "ModelRequest",
    "ModelResponse",
    "Observation",
    "ObservationAddition",
    "ObservationDeletion",
    "OpenAIChatAdapter",
    "PriceTable",
    "Provenance",
    "ProviderAdapter",
    "Relation",
    "RequestMetadata",
    "RetryPolicy",
    "ScriptItem",
    "ScriptedModel",
    "Secret",
    "SimulatedModel",
    "SqliteGraphStore",
    "StreamDone",
    "StreamEvent",
    "TextDelta",
    "Timeouts",
    "ToolCall",
    "ToolCallDelta",
    "ToolResultMessage",
    "ToolSpec",
    "Usage",
    "UserMessage",
    "create_model_adapter",
    "export_memory_file",
    "import_memory_file",
    "open_sqlite_graph_store",
    "redact_processor",
    "redact_text",
    "to_wire",
    "tool_call",
]
