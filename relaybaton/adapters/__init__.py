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
from relaybaton.adapters._gemini import GeminiAdapter
from relaybaton.adapters._http import Timeouts
from relaybaton.adapters._openai import OpenAIChatAdapter
from relaybaton.adapters._pricing import ModelPrice, PriceTable
from relaybaton.adapters._protocol import Capabilities, ModelAdapter
from relaybaton.adapters._redact import redact_processor, redact_text
from relaybaton.adapters._retry import RetryPolicy

__all__ = [
    "AnthropicAdapter",
    "AssistantMessage",
    "Capabilities",
    "ChatMessage",
    "GeminiAdapter",
    "ImagePart",
    "ModelAdapter",
    "ModelPrice",
    "ModelRequest",
    "ModelResponse",
    "OpenAIChatAdapter",
    "PriceTable",
    "RequestMetadata",
    "RetryPolicy",
    "Secret",
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
    "redact_processor",
    "redact_text",
]
