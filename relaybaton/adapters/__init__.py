"""Everything that touches the outside world: model providers, stores, transports."""

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
from relaybaton.adapters._protocol import Capabilities, ModelAdapter

__all__ = [
    "AssistantMessage",
    "Capabilities",
    "ChatMessage",
    "ImagePart",
    "ModelAdapter",
    "ModelRequest",
    "ModelResponse",
    "RequestMetadata",
    "StreamDone",
    "StreamEvent",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolResultMessage",
    "ToolSpec",
    "Usage",
    "UserMessage",
]
