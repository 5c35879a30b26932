"""Model adapters: the chat types and the adapter protocol, the providers' wire protocols over
aiohttp, retries, pricing, credentials, redaction, and the simulated and scripted models.
"""

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
from relaybaton.adapters._http import Timeouts
from relaybaton.adapters._metrics import MeteredAdapter, MetricsSink, ModelCallRecord
from relaybaton.adapters._openai import OpenAIChatAdapter
from relaybaton.adapters._pricing import ModelPrice, PriceTable
from relaybaton.adapters._protocol import Capabilities, ModelAdapter
from relaybaton.adapters._provider import ProviderAdapter
from relaybaton.adapters._redact import redact_processor, redact_text
from relaybaton.adapters._retry import RetryPolicy, sending_once
from relaybaton.adapters._scripted import ScriptedModel, ScriptItem, tool_call
from relaybaton.adapters._simulated import SimulatedModel

__all__ = [
    "AnthropicAdapter",
    "AssistantMessage",
    "Capabilities",
    "ChatMessage",
    "GeminiAdapter",
    "ImagePart",
    "MeteredAdapter",
    "MetricsSink",
    "ModelAdapter",
    "ModelCallRecord",
    "ModelPrice",
    "ModelRequest",
    "ModelResponse",
    "OpenAIChatAdapter",
    "PriceTable",
    "ProviderAdapter",
    "RequestMetadata",
    "RetryPolicy",
    "ScriptItem",
    "ScriptedModel",
    "Secret",
    "SimulatedModel",
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
    "redact_processor",
    "redact_text",
    "sending_once",
    "tool_call",
]
