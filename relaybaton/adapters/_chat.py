"""The internal chat types: one history shape that every provider adapter translates.

A conversation's transcript is a sequence of ``ChatMessage`` values. Adapters encode it for
their provider and decode the provider's answer back into an ``AssistantMessage``; nothing
outside ``relaybaton.adapters`` ever sees a provider's own format.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "AssistantMessage",
    "ChatMessage",
    "ImagePart",
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


class ImagePart(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An image in a user message: inline base64 data, or a URL the provider fetches."""

    media_type: str = "image/png"
    data_base64: str = ""
    url: str = ""


class ToolCall(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A tool call as the model produced it; ``arguments`` is the model's JSON text.

    ``signature`` is an opaque token some providers attach to a call (Gemini's
    ``thoughtSignature``) and require back, unchanged, when the history is sent again.
    """

    id: str
    name: str
    arguments: str = "{}"
    signature: str = ""


class UserMessage(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="user"):
    """A user's turn. ``message_id`` is the producer's id, the key of exactly-once.

    ``answer_schema`` is a JSON Schema the answer to this message must fit (a client asked
    for structured output); it travels with the message so the agent that answers, after
    any handoff or a restart, still knows it.
    """

    text: str
    message_id: str = ""
    images: tuple[ImagePart, ...] = ()
    answer_schema: dict[str, Any] | None = None


class AssistantMessage(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="assistant"):
    """A model's answer: text, tool calls, or both. ``agent`` is who produced it."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    agent: str = ""


class ToolResultMessage(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="tool_result"):
    """The result of one tool call, recorded right after the call that asked for it."""

    call_id: str
    name: str
    content: str
    is_error: bool = False


ChatMessage = UserMessage | AssistantMessage | ToolResultMessage


class ToolSpec(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A tool as a model sees it: ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, object] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


class Usage(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Tokens and dollars of one call, or a sum of calls.

    ``estimated`` is true when the server reported no counts and they were estimated from
    the text (``adapters._estimate``); a sum is estimated if any part of it is.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    estimated: bool = False

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            estimated=self.estimated or other.estimated,
        )


class RequestMetadata(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Who is asking: used for routing, simulation and metrics, never sent to a provider."""

    agent: str = ""
    conversation_id: str = ""


class ModelRequest(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One call to a model.

    ``tool_choice`` is ``"auto"``, ``"none"``, ``"required"`` or a tool name.
    ``response_format`` is a JSON Schema the answer must follow, when set.
    """

    instructions: str = ""
    messages: tuple[ChatMessage, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"
    parallel_tool_calls: bool = True
    max_output_tokens: int | None = None
    temperature: float | None = None
    response_format: dict[str, object] | None = None
    metadata: RequestMetadata = RequestMetadata()


class ModelResponse(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A whole answer with its usage; ``model`` is the model that actually answered."""

    message: AssistantMessage
    usage: Usage = Usage()
    model: str = ""
    finish_reason: Literal["stop", "tool_calls", "length", "content_filter"] = "stop"


class TextDelta(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="text_delta"):
    """A piece of answer text, in order."""

    text: str


class ToolCallDelta(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="tool_call_delta"):
    """A piece of a tool call; ``index`` orders the calls of one answer."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


class StreamDone(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="done"):
    """The last event of every stream: the whole answer, assembled."""

    response: ModelResponse


StreamEvent = TextDelta | ToolCallDelta | StreamDone
