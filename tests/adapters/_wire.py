"""Chat Completions requests checked as strictly as the strictest servers that take them.

OpenAI refuses unknown parameters; llama-cpp-python's server validates every message with
pydantic, so a ``content`` that is not a string where it expects one (an assistant message
with tool calls sent with ``"content": null``) is refused; vLLM and Ollama take the same
shapes. The fake servers run every ``/chat/completions`` body through ``check_chat_request``
and answer 400 with the reason, as those servers do, so a request that one of them would
refuse fails the test that sent it.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class _Strict(msgspec.Struct, forbid_unknown_fields=True):
    pass


class TextPart(_Strict, tag_field="type", tag="text"):
    text: str


class ImageUrl(_Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict, tag_field="type", tag="image_url"):
    image_url: ImageUrl


class FunctionCall(_Strict):
    name: str
    arguments: str  # a JSON string, never an object


class ToolCall(_Strict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class SystemMessage(_Strict, tag_field="role", tag="system"):
    content: str | list[TextPart]


class DeveloperMessage(_Strict, tag_field="role", tag="developer"):
    content: str | list[TextPart]


class UserMessage(_Strict, tag_field="role", tag="user"):
    content: str | list[TextPart | ImagePart]


class AssistantMessage(_Strict, tag_field="role", tag="assistant"):
    # A string, or absent: llama-cpp-python refuses null ("Input should be a valid string").
    content: str | list[TextPart] = ""
    tool_calls: list[ToolCall] | None = None


class ToolMessage(_Strict, tag_field="role", tag="tool"):
    tool_call_id: str
    content: str | list[TextPart]


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


class FunctionSpec(_Strict):
    name: str
    description: str | None = None
    parameters: dict[str, object] | None = None
    strict: bool | None = None


class ToolSpec(_Strict):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class JsonSchema(_Strict):
    name: str
    schema: dict[str, object] | None = None
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None


class StreamOptions(_Strict):
    include_usage: bool


class ChatRequest(_Strict):
    model: str
    messages: list[Message]
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_completion_tokens: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    response_format: ResponseFormat | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None


def check_chat_request(body: bytes) -> str | None:
    """What a strict server would say of ``body``, or None when it takes it."""
    try:
        request = msgspec.json.decode(body, type=ChatRequest, strict=True)
    except msgspec.ValidationError as exc:
        return f"invalid request: {exc}"
    except msgspec.DecodeError as exc:
        return f"not JSON: {exc}"
    if request.stream_options is not None and not request.stream:
        return "stream_options is only allowed when stream is true"
    for index, message in enumerate(request.messages):
        if isinstance(message, AssistantMessage) and not message.tool_calls and not message.content:
            return f"messages[{index}]: an assistant message needs content or tool_calls"
    return None
