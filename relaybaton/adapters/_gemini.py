"""Google Gemini: ``POST {base}/v1beta/models/{model}:generateContent`` with ``x-goog-api-key``.

``contents`` alternate ``user`` and ``model`` turns of parts; a tool call is a
``functionCall`` part and its result a ``functionResponse`` part in the next user turn;
instructions go in ``systemInstruction``. ``:streamGenerateContent?alt=sse`` sends whole
``GenerateContentResponse`` objects as SSE data with no end marker: a candidate's
``finishReason`` says the answer is complete, and the body then ends.
"""

from __future__ import annotations

import uuid
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
    "GeminiAdapter",
    "GeminiStreamAssembler",
    "decode_gemini",
    "decode_gemini_contents",
    "encode_gemini",
]

_FILTERED = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)


def _args(arguments: str) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(arguments or "{}")
    except msgspec.DecodeError:
        return {}  # the API takes only an object; a model's broken JSON cannot be replayed
    return value if isinstance(value, dict) else {"value": value}


def _parts(message: ChatMessage) -> tuple[str, list[dict[str, object]]]:
    if isinstance(message, UserMessage):
        parts: list[dict[str, object]] = [{"text": message.text}] if message.text else []
        for image in message.images:
            if image.url:
                parts.append({"fileData": {"mimeType": image.media_type, "fileUri": image.url}})
            else:
                inline = {"mimeType": image.media_type, "data": image.data_base64}
                parts.append({"inlineData": inline})
        return "user", parts
    if isinstance(message, AssistantMessage):
        parts = [{"text": message.text}] if message.text else []
        for call in message.tool_calls:
            part: dict[str, object] = {
                "functionCall": {"id": call.id, "name": call.name, "args": _args(call.arguments)}
            }
            if call.signature:
                part["thoughtSignature"] = call.signature
            parts.append(part)
        return "model", parts
    key = "error" if message.is_error else "output"
    response = {"id": message.call_id, "name": message.name, "response": {key: message.content}}
    return "user", [{"functionResponse": response}]


def encode_contents(messages: tuple[ChatMessage, ...]) -> list[dict[str, object]]:
    """The ``contents`` array: same-role turns merged, function responses first."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role, parts = _parts(message)
        if not parts:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    for turn in out:
        if turn["role"] == "user":
            turn["parts"].sort(key=lambda p: "functionResponse" not in p)  # stable
    return out


def encode_gemini(request: ModelRequest, *, stream: bool = False) -> dict[str, object]:
    """Build the generateContent request body (the model is in the URL, not the body)."""
    body: dict[str, object] = {"contents": encode_contents(request.messages)}
    if request.instructions:
        body["systemInstruction"] = {"parts": [{"text": request.instructions}]}
    if request.tools:
        declarations = [
            {"name": t.name, "description": t.description, "parametersJsonSchema": t.parameters}
            for t in request.tools
        ]
        body["tools"] = [{"functionDeclarations": declarations}]
        mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(request.tool_choice)
        config: dict[str, object] = {"mode": mode or "ANY"}
        if mode is None:
            config["allowedFunctionNames"] = [request.tool_choice]
        body["toolConfig"] = {"functionCallingConfig": config}
    generation: dict[str, object] = {}
    if request.max_output_tokens is not None:
        generation["maxOutputTokens"] = request.max_output_tokens
    if request.temperature is not None:
        generation["temperature"] = request.temperature
    if request.response_format is not None:
        generation["responseMimeType"] = "application/json"
        generation["responseJsonSchema"] = request.response_format
    if generation:
        body["generationConfig"] = generation
    return body


def decode_gemini_contents(contents: list[dict[str, Any]]) -> tuple[ChatMessage, ...]:
    """Invert ``encode_contents``: split merged turns back into history messages."""
    out: list[ChatMessage] = []
    for turn in contents:
        parts = turn["parts"]
        if turn["role"] == "model":
            out.append(_assistant(parts))
            continue
        for p in parts:
            if "functionResponse" in p:
                fr = p["functionResponse"]
                is_error = "error" in fr["response"]
                content = fr["response"]["error" if is_error else "output"]
                out.append(ToolResultMessage(call_id=fr.get("id", ""), name=fr["name"],
                                             content=content, is_error=is_error))  # fmt: skip
        text = "".join(p["text"] for p in parts if "text" in p)
        images = tuple(_image_of(p) for p in parts if "inlineData" in p or "fileData" in p)
        if text or images:
            out.append(UserMessage(text=text, images=images))
    return tuple(out)


def _image_of(part: dict[str, Any]) -> ImagePart:
    if "fileData" in part:
        return ImagePart(media_type=part["fileData"]["mimeType"], url=part["fileData"]["fileUri"])
    inline = part["inlineData"]
    return ImagePart(media_type=inline["mimeType"], data_base64=inline["data"])


def _assistant(parts: list[dict[str, Any]]) -> AssistantMessage:
    text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
    calls = tuple(
        ToolCall(
            id=p["functionCall"].get("id") or f"call_{uuid.uuid4().hex[:16]}",
            name=p["functionCall"]["name"],
            arguments=msgspec.json.encode(p["functionCall"].get("args") or {}).decode(),
            signature=p.get("thoughtSignature", ""),
        )
        for p in parts
        if "functionCall" in p
    )
    return AssistantMessage(text=text, tool_calls=calls)


# --- the answer ---------------------------------------------------------------------------


class _Content(msgspec.Struct):
    parts: list[dict[str, Any]] = []
    role: str = "model"


class _Candidate(msgspec.Struct):
    content: _Content | None = None
    finishReason: str | None = None  # noqa: N815 - the wire's own name


class _UsageMetadata(msgspec.Struct):
    promptTokenCount: int = 0  # noqa: N815
    candidatesTokenCount: int = 0  # noqa: N815
    cachedContentTokenCount: int = 0  # noqa: N815
    thoughtsTokenCount: int = 0  # noqa: N815
    toolUsePromptTokenCount: int = 0  # noqa: N815


class _Feedback(msgspec.Struct):
    blockReason: str | None = None  # noqa: N815


class _Answer(msgspec.Struct):
    candidates: list[_Candidate] | None = None
    usageMetadata: _UsageMetadata | None = None  # noqa: N815
    modelVersion: str = ""  # noqa: N815
    promptFeedback: _Feedback | None = None  # noqa: N815
    error: dict[str, Any] | None = None


def _usage(u: _UsageMetadata | None) -> Usage:
    if u is None:
        return Usage()
    # Thoughts are billed as output but counted apart from candidatesTokenCount.
    return Usage(
        input_tokens=u.promptTokenCount + u.toolUsePromptTokenCount,
        output_tokens=u.candidatesTokenCount + u.thoughtsTokenCount,
        cached_input_tokens=u.cachedContentTokenCount,
        reasoning_tokens=u.thoughtsTokenCount,
    )


def _check(answer: _Answer) -> None:
    if answer.error is not None:
        raise ProviderReply("error", msgspec.json.encode({"error": answer.error}).decode())
    if answer.promptFeedback is not None and answer.promptFeedback.blockReason:
        raise ProviderReply("filtered", f"prompt blocked: {answer.promptFeedback.blockReason}")


def _finish(reason: str | None, message: AssistantMessage) -> str:
    if message.tool_calls:
        return "tool_calls"
    if reason in _FILTERED:
        if not message.text:
            raise ProviderReply("filtered", f"finishReason {reason}")
        return "content_filter"
    if reason == "MALFORMED_FUNCTION_CALL" and not message.text:
        raise ProviderReply("malformed", "finishReason MALFORMED_FUNCTION_CALL")
    return "length" if reason == "MAX_TOKENS" else "stop"


_answer_decoder = msgspec.json.Decoder(_Answer)


def decode_gemini(body: bytes | str) -> ModelResponse:
    """Read a generateContent answer (raises ``ProviderReply`` or a msgspec error)."""
    answer = _answer_decoder.decode(body)
    _check(answer)
    if not answer.candidates:
        raise ProviderReply("malformed", "an answer with no candidates")
    candidate = answer.candidates[0]
    message = _assistant(candidate.content.parts if candidate.content else [])
    return ModelResponse(
        message=message,
        usage=_usage(answer.usageMetadata),
        model=answer.modelVersion,
        finish_reason=_finish(candidate.finishReason, message),  # type: ignore[arg-type]
    )


@final
class GeminiStreamAssembler:
    """Assembles streamed ``GenerateContentResponse`` objects into deltas and an answer."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: list[ToolCall] = []
        self._reason: str | None = None
        self._usage = Usage()
        self._model = ""
        self.done = False

    def feed(self, event: str, data: str) -> list[StreamEvent]:
        """Take one SSE payload; a finish reason marks the answer complete."""
        answer = _answer_decoder.decode(data)
        _check(answer)
        self._model = answer.modelVersion or self._model
        if answer.usageMetadata is not None:
            self._usage = _usage(answer.usageMetadata)
        out: list[StreamEvent] = []
        for candidate in (answer.candidates or [])[:1]:
            piece = _assistant(candidate.content.parts if candidate.content else [])
            if piece.text:
                self._text.append(piece.text)
                out.append(TextDelta(text=piece.text))
            for call in piece.tool_calls:  # Gemini sends each call whole, never in pieces
                out.append(ToolCallDelta(index=len(self._calls), id=call.id, name=call.name,
                                         arguments=call.arguments))  # fmt: skip
                self._calls.append(call)
            if candidate.finishReason:
                self._reason = candidate.finishReason
                self.done = True
        return out

    def finish(self) -> ModelResponse:
        """The assembled answer."""
        message = AssistantMessage(text="".join(self._text), tool_calls=tuple(self._calls))
        return ModelResponse(
            message=message,
            usage=self._usage,
            model=self._model,
            finish_reason=_finish(self._reason, message),  # type: ignore[arg-type]
        )


@final
class GeminiAdapter(ProviderAdapter):
    """A model behind the Gemini API."""

    provider: ClassVar[str] = "gemini"

    def _headers(self, api_key: Secret | None) -> Mapping[str, str]:
        return {"x-goog-api-key": api_key.reveal()} if api_key is not None else {}

    def _url(self, *, stream: bool) -> str:
        model = self._model.removeprefix("models/")
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self._base_url}/v1beta/models/{model}:{verb}"

    def _encode(self, request: ModelRequest, *, stream: bool) -> dict[str, object]:
        return encode_gemini(request, stream=stream)

    def _decode(self, body: bytes) -> ModelResponse:
        return decode_gemini(body)

    def _assembler(self) -> StreamAssembler:
        return GeminiStreamAssembler()
