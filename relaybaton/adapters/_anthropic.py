"""Anthropic Messages: ``POST {base}/v1/messages`` with ``x-api-key`` and ``anthropic-version``.

The instructions go in the top-level ``system``; the history alternates user and assistant
messages of content blocks. A tool call is a ``tool_use`` block; its result is a
``tool_result`` block in the very next user message, before any text of that message, so
consecutive same-role messages are merged. Streaming is SSE with named events
(``message_start``, ``content_block_start/delta/stop``, ``message_delta``, ``message_stop``,
``ping``, and ``error``, which can arrive after a 200).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, final

import msgspec

from relaybaton.adapters._chat import (
    AssistantMessage,
    ChatMessage,
    ImagePart,
    ModelRequest,
    ModelResponse,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolResultMessage,
    Usage,
    UserMessage,
)
from relaybaton.adapters._credentials import Secret
from relaybaton.adapters._errorbody import ProviderReply
from relaybaton.adapters._provider import ProviderAdapter, StreamAssembler

__all__ = [
    "ANTHROPIC_VERSION",
    "AnthropicAdapter",
    "AnthropicStreamAssembler",
    "decode_anthropic",
    "decode_anthropic_messages",
    "encode_anthropic",
]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # the API requires max_tokens; this is a modest answer length

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _input_object(arguments: str) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(arguments or "{}")
    except msgspec.DecodeError:
        return {}  # the API takes only an object; a model's broken JSON cannot be replayed
    return value if isinstance(value, dict) else {"value": value}


def _image_block(image: ImagePart) -> dict[str, object]:
    if image.url:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    source = {"type": "base64", "media_type": image.media_type, "data": image.data_base64}
    return {"type": "image", "source": source}


def _blocks(message: ChatMessage) -> tuple[str, list[dict[str, object]]]:
    if isinstance(message, UserMessage):
        blocks: list[dict[str, object]] = [{"type": "text", "text": message.text}]
        blocks = [b for b in blocks if b["text"]] + [_image_block(i) for i in message.images]
        return "user", blocks
    if isinstance(message, AssistantMessage):
        blocks = [{"type": "text", "text": message.text}] if message.text else []
        blocks += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": _input_object(c.arguments)}
            for c in message.tool_calls
        ]
        return "assistant", blocks
    result: dict[str, object] = {
        "type": "tool_result",
        "tool_use_id": message.call_id,
        "content": message.content,
    }
    if message.is_error:
        result["is_error"] = True
    return "user", [result]


def encode_messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, object]]:
    """The ``messages`` array: same-role turns merged, tool results first in a user turn."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role, blocks = _blocks(message)
        if not blocks:
            continue  # the API refuses empty content
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:
        if turn["role"] == "user":
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")  # stable
    return out


def encode_anthropic(
    request: ModelRequest, model: str, *, stream: bool = False
) -> dict[str, object]:
    """Build the Messages request body for ``request``."""
    body: dict[str, object] = {
        "model": model,
        "max_tokens": request.max_output_tokens or DEFAULT_MAX_TOKENS,
        "messages": encode_messages(request.messages),
    }
    system = request.instructions
    if request.response_format is not None:
        # Messages has no schema-constrained output in the base API version; say it instead.
        schema = msgspec.json.encode(request.response_format).decode()
        system = f"{system}\n\nAnswer with only a JSON value matching this schema: {schema}"
    if system:
        body["system"] = system.strip()
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
        kind = {"auto": "auto", "required": "any", "none": "none"}.get(request.tool_choice, "tool")
        choice: dict[str, object] = {"type": kind}
        if kind == "tool":
            choice["name"] = request.tool_choice
        if kind != "none" and not request.parallel_tool_calls:
            choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = choice
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if stream:
        body["stream"] = True
    return body


def decode_anthropic_messages(
    messages: list[dict[str, Any]],
) -> tuple[ChatMessage, ...]:
    """Invert ``encode_messages``: split merged turns back into history messages."""
    out: list[ChatMessage] = []
    for turn in messages:
        blocks = turn["content"]
        if turn["role"] == "assistant":
            text = "".join(b["text"] for b in blocks if b["type"] == "text")
            calls = tuple(
                ToolCall(
                    id=b["id"], name=b["name"], arguments=msgspec.json.encode(b["input"]).decode()
                )
                for b in blocks
                if b["type"] == "tool_use"
            )
            out.append(AssistantMessage(text=text, tool_calls=calls))
            continue
        out += [
            ToolResultMessage(call_id=b["tool_use_id"], name="", content=b["content"],
                              is_error=b.get("is_error", False))
            for b in blocks
            if b["type"] == "tool_result"
        ]  # fmt: skip
        text = "".join(b["text"] for b in blocks if b["type"] == "text")
        images = tuple(_image_of(b["source"]) for b in blocks if b["type"] == "image")
        if text or images:
            out.append(UserMessage(text=text, images=images))
    return tuple(out)


def _image_of(source: dict[str, str]) -> ImagePart:
    if source["type"] == "url":
        return ImagePart(url=source["url"])
    return ImagePart(media_type=source["media_type"], data_base64=source["data"])


# --- the answer ---------------------------------------------------------------------------


class _Block(msgspec.Struct):
    type: str
    text: str = ""
    id: str = ""
    name: str = ""
    input: dict[str, Any] | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _Message(msgspec.Struct):
    model: str = ""
    content: list[_Block] = []
    stop_reason: str | None = None
    usage: _Usage | None = None


def _usage(u: _Usage | None) -> Usage:
    if u is None:
        return Usage()
    cached = u.cache_read_input_tokens or 0
    # Anthropic's input_tokens counts only uncached input; ours counts all input.
    total_in = (u.input_tokens or 0) + cached + (u.cache_creation_input_tokens or 0)
    return Usage(input_tokens=total_in, output_tokens=u.output_tokens or 0,
                 cached_input_tokens=cached)  # fmt: skip


def _response(
    model: str, text: str, calls: tuple[ToolCall, ...], stop: str | None, usage: Usage
) -> ModelResponse:
    finish = _FINISH.get(stop or "end_turn", "stop")
    if finish == "content_filter" and not text and not calls:
        raise ProviderReply("filtered", "stop_reason refusal")
    return ModelResponse(
        message=AssistantMessage(text=text, tool_calls=calls),
        usage=usage,
        model=model,
        finish_reason="tool_calls" if calls else finish,  # type: ignore[arg-type]
    )


_message_decoder = msgspec.json.Decoder(_Message)


def decode_anthropic(body: bytes | str) -> ModelResponse:
    """Read a Messages answer (raises ``ProviderReply`` or a msgspec error)."""
    message = _message_decoder.decode(body)
    text = "".join(b.text for b in message.content if b.type == "text")
    calls = tuple(
        ToolCall(id=b.id, name=b.name, arguments=msgspec.json.encode(b.input or {}).decode())
        for b in message.content
        if b.type == "tool_use"
    )
    return _response(message.model, text, calls, message.stop_reason, _usage(message.usage))


class _Delta(msgspec.Struct):
    type: str = ""
    text: str = ""
    partial_json: str = ""
    stop_reason: str | None = None


class _Event(msgspec.Struct):
    type: str
    index: int = 0
    message: _Message | None = None
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None


_event_decoder = msgspec.json.Decoder(_Event)


@final
class AnthropicStreamAssembler:
    """Assembles the Messages SSE events into deltas and the final answer."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: list[tuple[str, str, list[str]]] = []
        self._call_of_block: dict[int, int] = {}
        self._model = ""
        self._usage = _Usage()
        self._stop: str | None = None
        self.done = False

    def feed(self, event: str, data: str) -> list[StreamEvent]:
        """Take one named SSE event; ``message_stop`` ends the stream."""
        if event == "error":
            raise ProviderReply("error", data)
        if event == "ping":
            return []
        e = _event_decoder.decode(data)
        if e.type == "message_start" and e.message is not None:
            self._model = e.message.model
            self._merge_usage(e.message.usage)
        elif e.type == "content_block_start" and e.content_block is not None:
            block = e.content_block
            if block.type == "tool_use":
                self._call_of_block[e.index] = len(self._calls)
                self._calls.append((block.id, block.name, []))
                return [ToolCallDelta(index=len(self._calls) - 1, id=block.id, name=block.name)]
            if block.type == "text" and block.text:
                self._text.append(block.text)
                return [TextDelta(text=block.text)]
        elif e.type == "content_block_delta" and e.delta is not None:
            return self._delta(e.index, e.delta)
        elif e.type == "message_delta":
            if e.delta is not None and e.delta.stop_reason:
                self._stop = e.delta.stop_reason
            self._merge_usage(e.usage)
        elif e.type == "message_stop":
            self.done = True
        return []

    def _delta(self, index: int, delta: _Delta) -> list[StreamEvent]:
        if delta.type == "text_delta" and delta.text:
            self._text.append(delta.text)
            return [TextDelta(text=delta.text)]
        if delta.type == "input_json_delta" and index in self._call_of_block:
            call = self._call_of_block[index]
            self._calls[call][2].append(delta.partial_json)
            return [ToolCallDelta(index=call, arguments=delta.partial_json)]
        return []  # thinking and signature deltas are not part of the answer

    def _merge_usage(self, usage: _Usage | None) -> None:
        # message_delta carries cumulative counts; a field it omits keeps its earlier value.
        if usage is None:
            return
        for field in usage.__struct_fields__:
            value = getattr(usage, field)
            if value is not None:
                setattr(self._usage, field, value)

    def finish(self) -> ModelResponse:
        """The assembled answer."""
        calls = tuple(
            ToolCall(id=i, name=n, arguments="".join(parts) or "{}") for i, n, parts in self._calls
        )
        return _response(self._model, "".join(self._text), calls, self._stop, _usage(self._usage))


@final
class AnthropicAdapter(ProviderAdapter):
    """A model behind Anthropic Messages."""

    provider: ClassVar[str] = "anthropic"

    def _headers(self, api_key: Secret | None) -> Mapping[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key is not None:
            headers["x-api-key"] = api_key.reveal()
        return headers

    def _url(self, *, stream: bool) -> str:
        return f"{self._base_url}/v1/messages"

    def _encode(self, request: ModelRequest, *, stream: bool) -> dict[str, object]:
        return encode_anthropic(request, self._model, stream=stream)

    def _decode(self, body: bytes) -> ModelResponse:
        return decode_anthropic(body)

    def _assembler(self) -> StreamAssembler:
        return AnthropicStreamAssembler()
