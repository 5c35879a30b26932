"""Model adapters: the chat types, the adapter protocol, and the models a flow names.

Exported are what a caller of a model and a writer of an adapter need: the chat and stream
types, ``ModelAdapter`` and its ``Capabilities``, ``create_model_adapter`` (a provider's
adapter from a ``provider:model`` id, with its ``Timeouts`` and ``RetryPolicy``), the offline
``SimulatedModel`` and the ``ModelCallRecord`` every model call publishes. The providers'
wire protocols, pricing, credentials and redaction are internals; the scripted and faulty
models are test fakes, in ``relaybaton.testing``.
"""

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
from relaybaton.adapters._factory import create_model_adapter
from relaybaton.adapters._http import Timeouts
from relaybaton.adapters._metrics import ModelCallRecord
from relaybaton.adapters._protocol import Capabilities, ModelAdapter
from relaybaton.adapters._retry import RetryPolicy, retries_itself, sending_once
from relaybaton.adapters._simulated import SimulatedModel

__all__ = [
    "AssistantMessage",
    "Capabilities",
    "ChatMessage",
    "ImagePart",
    "ModelAdapter",
    "ModelCallRecord",
    "ModelRequest",
    "ModelResponse",
    "RequestMetadata",
    "RetryPolicy",
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
    "retries_itself",
    "sending_once",
]
