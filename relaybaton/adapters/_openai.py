"""OpenAI Chat Completions, and every server that copies it (vLLM, Ollama, llama.cpp, ...).

``POST {base}/chat/completions`` with ``Authorization: Bearer <key>``. Streaming is SSE of
``chat.completion.chunk`` objects ending at ``data: [DONE]``; with
``stream_options.include_usage`` a last chunk carries ``usage`` and no choices (some copies
send ``"choices": null`` there instead of ``[]``).
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
from relaybaton.adapters._http import Timeouts
from relaybaton.adapters._pricing import PriceTable
from relaybaton.adapters._protocol import Capabilities
from relaybaton.adapters._provider import ProviderAdapter, StreamAssembler
from relaybaton.adapters._retry import RetryPolicy
from relaybaton.runtime import Clock

__all__ = [
    "OpenAIChatAdapter",
    "OpenAIStreamAssembler",
    "decode_openai",
    "decode_openai_messages",
    "encode_openai",
]

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
           "function_call": "tool_calls", "content_filter": "content_filter"}  # fmt: skip


def _image_url(image: ImagePart) -> str:
    return image.url or f"data:{image.media_type};base64,{image.data_base64}"


def _encode_message(message: ChatMessage) -> dict[str, object]:
    if isinstance(message, UserMessage):
        if not message.images:
            return {"role": "user", "content": message.text}
        parts: list[dict[str, object]] = [{"type": "text", "text": message.text}]
        parts += [
            {"type": "image_url", "image_url": {"url": _image_url(i)}} for i in message.images
        ]
        return {"role": "user", "content": parts}
    if isinstance(message, AssistantMessage):
        # Always a string: OpenAI takes "" beside tool calls, and llama.cpp's and
        # llama-cpp-python's servers refuse null there ("Input should be a valid string").
        out: dict[str, object] = {"role": "assistant", "content": message.text}
        if message.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments}}
                for c in message.tool_calls
            ]  # fmt: skip
        return out
    # The wire has no error flag for a tool result; the text itself must say it failed.
    return {"role": "tool", "tool_call_id": message.call_id, "content": message.content}


def encode_openai(
    request: ModelRequest,
    model: str,
    *,
    stream: bool = False,
    instructions_role: str = "system",
    max_tokens_field: str = "max_completion_tokens",
) -> dict[str, object]:
    """Build the Chat Completions request body for ``request``."""
    messages: list[dict[str, object]] = []
    if request.instructions:
        messages.append({"role": instructions_role, "content": request.instructions})
    messages += [_encode_message(m) for m in request.messages]
    body: dict[str, object] = {"model": model, "messages": messages}
    if request.tools:
        body["tools"] = [
            {"type": "function",
             "function": {"name": t.name, "description": t.description,
                          "parameters": t.parameters}}
            for t in request.tools
        ]  # fmt: skip
        choice = request.tool_choice
        body["tool_choice"] = (
            choice
            if choice in ("auto", "none", "required")
            else {"type": "function", "function": {"name": choice}}
        )
        body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.max_output_tokens is not None:
        body[max_tokens_field] = request.max_output_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.response_format is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": request.response_format},
        }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def decode_openai_messages(messages: list[dict[str, Any]]) -> tuple[str, tuple[ChatMessage, ...]]:
    """Invert ``encode_openai``'s ``messages``: the instructions and the history."""
    instructions = ""
    out: list[ChatMessage] = []
    for m in messages:
        role: str = m["role"]
        content: Any = m.get("content") or ""
        if role in ("system", "developer"):
            instructions = content
        elif role == "user" and isinstance(content, str):
            out.append(UserMessage(text=content))
        elif role == "user":
            text = "".join(p["text"] for p in content if p["type"] == "text")
            images = tuple(_image_of(p["image_url"]["url"]) for p in content if p["type"] != "text")
            out.append(UserMessage(text=text, images=images))
        elif role == "assistant":
            calls = tuple(
                ToolCall(id=c["id"], name=c["function"]["name"],
                         arguments=c["function"]["arguments"])
                for c in m.get("tool_calls") or ()
            )  # fmt: skip
            out.append(AssistantMessage(text=content or "", tool_calls=calls))
        else:
            out.append(ToolResultMessage(call_id=m["tool_call_id"], name="", content=content))
    return instructions, tuple(out)


def _image_of(url: str) -> ImagePart:
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        return ImagePart(media_type=head[5:].removesuffix(";base64"), data_base64=data)
    return ImagePart(url=url)


# --- the answer, typed (msgspec fails closed on a wrong shape) ---------------------------


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | dict[str, Any] | None = None


class _WireToolCall(msgspec.Struct):
    function: _Function = msgspec.field(default_factory=_Function)
    id: str | None = None
    index: int | None = None


class _Message(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[_WireToolCall] | None = None


class _Choice(msgspec.Struct):
    message: _Message = msgspec.field(default_factory=_Message)
    delta: _Message = msgspec.field(default_factory=_Message)
    finish_reason: str | None = None


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _Answer(msgspec.Struct):
    model: str = ""
    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    error: dict[str, Any] | None = None


def _usage(u: _Usage | None) -> Usage:
    if u is None:
        return Usage()
    pd, cd = u.prompt_tokens_details, u.completion_tokens_details
    return Usage(
        input_tokens=u.prompt_tokens,
        output_tokens=u.completion_tokens,
        cached_input_tokens=(pd.cached_tokens or 0) if pd else 0,
        reasoning_tokens=(cd.reasoning_tokens or 0) if cd else 0,
    )


def _arguments(value: str | dict[str, Any] | None) -> str:
    # Some copies send the arguments as an object instead of JSON text.
    if isinstance(value, dict):
        return msgspec.json.encode(value).decode()
    return value or ""


_answer_decoder = msgspec.json.Decoder(_Answer)


def decode_openai(body: bytes | str) -> ModelResponse:
    """Read a Chat Completions answer (raises ``ProviderReply`` or a msgspec error)."""
    answer = _answer_decoder.decode(body)
    if answer.error is not None:
        raise ProviderReply("error", msgspec.json.encode({"error": answer.error}).decode())
    if not answer.choices:
        raise ProviderReply("malformed", "an answer with no choices")
    choice = answer.choices[0]
    message = choice.message
    calls = tuple(
        ToolCall(id=c.id or f"call_{i}", name=c.function.name or "",
                 arguments=_arguments(c.function.arguments) or "{}")
        for i, c in enumerate(message.tool_calls or ())
    )  # fmt: skip
    text = message.content or message.refusal or ""
    finish = _FINISH.get(choice.finish_reason or "stop", "stop")
    if finish == "content_filter" and not text and not calls:
        raise ProviderReply("filtered", "finish_reason content_filter")
    if calls:
        finish = "tool_calls"  # some copies say "stop" after tool calls
    return ModelResponse(
        message=AssistantMessage(text=text, tool_calls=calls),
        usage=_usage(answer.usage),
        model=answer.model,
        finish_reason=finish,  # type: ignore[arg-type]
    )


class _Call:
    __slots__ = ("arguments", "id", "name")

    def __init__(self, id: str, name: str) -> None:
        self.id = id
        self.name = name
        self.arguments: list[str] = []


def _complete_json(parts: list[str]) -> bool:
    try:
        msgspec.json.decode("".join(parts))
    except msgspec.DecodeError:
        return False
    return True


@final
class OpenAIStreamAssembler:
    """Assembles ``chat.completion.chunk`` payloads into deltas and the final answer.

    Tool-call pieces are matched by ``index`` then ``id``. Two server quirks are tolerated:
    every call sent at index 0 (a named piece with a new id, after the current call's
    arguments form whole JSON, starts a new call) and a fresh id on every piece of one
    call (an unnamed piece continues the call at its index).
    """

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: list[_Call] = []
        self._by_index: dict[int, int] = {}
        self._finish = "stop"
        self._model = ""
        self._usage = Usage()
        self.done = False

    def feed(self, event: str, data: str) -> list[StreamEvent]:
        """Take one SSE payload; ``[DONE]`` ends the stream."""
        if data == "[DONE]":
            self.done = True
            return []
        chunk = _answer_decoder.decode(data)
        if chunk.error is not None:
            raise ProviderReply("error", msgspec.json.encode({"error": chunk.error}).decode())
        self._model = chunk.model or self._model
        if chunk.usage is not None:
            self._usage = _usage(chunk.usage)
        out: list[StreamEvent] = []
        for choice in chunk.choices or ():
            delta = choice.delta
            piece = delta.content or delta.refusal
            if piece:
                self._text.append(piece)
                out.append(TextDelta(text=piece))
            for wire in delta.tool_calls or ():
                out.append(self._tool_piece(wire))
            if choice.finish_reason:
                self._finish = _FINISH.get(choice.finish_reason, "stop")
        return out

    def _tool_piece(self, wire: _WireToolCall) -> ToolCallDelta:
        index = wire.index if wire.index is not None else len(self._calls)
        name = wire.function.name or ""
        slot = self._by_index.get(index)
        current = self._calls[slot] if slot is not None else None
        fresh = (
            current is None
            or (bool(name) and bool(wire.id) and wire.id != current.id
                and _complete_json(current.arguments))
        )  # fmt: skip
        if fresh or current is None:
            current = _Call(wire.id or f"call_{len(self._calls)}", name)
            self._by_index[index] = len(self._calls)
            self._calls.append(current)
        elif name and not current.name:
            current.name = name
        arguments = _arguments(wire.function.arguments)
        current.arguments.append(arguments)
        return ToolCallDelta(
            index=self._calls.index(current),
            id=current.id if fresh else "",
            name=name if fresh else "",
            arguments=arguments,
        )

    def finish(self) -> ModelResponse:
        """The assembled answer."""
        calls = tuple(
            ToolCall(id=c.id, name=c.name, arguments="".join(c.arguments) or "{}")
            for c in self._calls
        )
        text = "".join(self._text)
        if self._finish == "content_filter" and not text and not calls:
            raise ProviderReply("filtered", "finish_reason content_filter")
        return ModelResponse(
            message=AssistantMessage(text=text, tool_calls=calls),
            usage=self._usage,
            model=self._model,
            finish_reason="tool_calls" if calls else self._finish,  # type: ignore[arg-type]
        )


@final
class OpenAIChatAdapter(ProviderAdapter):
    """A model behind OpenAI Chat Completions or a server that copies it.

    Args (beyond ``ProviderAdapter``'s):
        instructions_role: ``system`` (every copy takes it) or ``developer``.
        max_tokens_field: ``max_completion_tokens`` (OpenAI) or ``max_tokens`` (older copies).
    """

    provider: ClassVar[str] = "openai"

    def __init__(
        self,
        model: str,
        *,
        api_key: Secret | None,
        base_url: str,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        prices: PriceTable | None = None,
        clock: Clock | None = None,
        capabilities: Capabilities | None = None,
        provider_name: str | None = None,
        instructions_role: str = "system",
        max_tokens_field: str = "max_completion_tokens",
    ) -> None:
        self._instructions_role = instructions_role
        self._max_tokens_field = max_tokens_field
        super().__init__(
            model,
            api_key=api_key,
            base_url=base_url,
            timeouts=timeouts,
            retry=retry,
            prices=prices,
            clock=clock,
            capabilities=capabilities,
            provider_name=provider_name,
        )

    def _headers(self, api_key: Secret | None) -> Mapping[str, str]:
        return {"authorization": f"Bearer {api_key.reveal()}"} if api_key else {}

    def _url(self, *, stream: bool) -> str:
        return f"{self._base_url}/chat/completions"

    def _encode(self, request: ModelRequest, *, stream: bool) -> dict[str, object]:
        return encode_openai(
            request,
            self._model,
            stream=stream,
            instructions_role=self._instructions_role,
            max_tokens_field=self._max_tokens_field,
        )

    def _decode(self, body: bytes) -> ModelResponse:
        return decode_openai(body)

    def _assembler(self) -> StreamAssembler:
        return OpenAIStreamAssembler()
