"""The OpenAI-compatible endpoint: ``POST /v1/chat/completions`` and ``GET /v1/models``.

The "model" names the flow (``customer_service``) or a flow and the agent a new
conversation starts at (``customer_service:billing``). The runtime keeps the conversation,
so only the last user message of ``messages`` is a new turn; the rest of the history is the
client's copy. The conversation id comes from the ``X-Relaybaton-Conversation-Id`` header or
the ``user`` field (a fresh conversation per request without either). The message id comes
from ``Idempotency-Key`` or is derived from the conversation, the message's position and
its text, so a client that retries the same request gets the same answer, processed once.

Streamed answers are ``chat.completion.chunk`` frames: the reply's deltas as the model
streams them (the final text in pieces when it did not stream), the finish chunk, a usage
chunk with ``stream_options.include_usage``, then ``data: [DONE]``.

A ``response_format`` asking for JSON is honoured (``_response_format``): the answering
agent's model is asked for it and the answer checked. Streamed, such an answer is sent only
once it was checked (in pieces), never as the model's raw deltas, which may be an attempt
that is sent back for correction.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, final

import msgspec
import structlog
from aiohttp import web

from relaybaton.actors import (
    ModelCallEvent,
    Paused,
    ReplyDeltaEvent,
    wait_for_turn,
    waiting_reply,
)
from relaybaton.adapters import ImagePart
from relaybaton.errors import OwnershipError
from relaybaton.runtime import TurnResult
from relaybaton.runtime.messages import ReplyEvent
from relaybaton.service._auth import current_token
from relaybaton.service._errors import ApiError, error_json
from relaybaton.service._forwarding import new_conversation_id
from relaybaton.service._images import images_in
from relaybaton.service._limits import read_body
from relaybaton.service._openai_options import refuse_unsupported
from relaybaton.service._paused import paused_result
from relaybaton.service._response_format import answer_schema, not_answered_yet
from relaybaton.service._sse import EventLog, LoggedEvent

TYPE_CHECKING = False
if TYPE_CHECKING:
    from relaybaton.service._server import Service

__all__ = ["OpenAICompat"]

_log = structlog.get_logger("relaybaton.service")

_encoder = msgspec.json.Encoder()
_CHUNK_CHARS = 24


class _ImageUrl(msgspec.Struct, kw_only=True):
    url: str
    detail: str | None = None


class _Part(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None
    image_url: _ImageUrl | None = None


class _Message(msgspec.Struct, kw_only=True):
    role: str
    content: str | list[_Part] | None = None


class _StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class ChatRequest(msgspec.Struct, kw_only=True):
    """The fields of a Chat Completions request the endpoint reads.

    Sampling options (temperature, max_tokens, ...) are the flow's to set and are not read;
    ``tools``, ``tool_choice`` and ``functions`` change what the answer is, so they are read
    and refused with a 400 (``refuse_unsupported``), never silently ignored;
    ``response_format`` is honoured (``answer_schema``).
    """

    model: str
    messages: list[_Message]
    stream: bool = False
    stream_options: _StreamOptions | None = None
    user: str | None = None
    n: int | None = None
    tools: list[dict[str, Any]] | None = None
    functions: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


def _image_urls(message: _Message) -> list[str]:
    """The image URLs of a message's ``image_url`` parts; another kind of part is a 400."""
    content = message.content
    if not isinstance(content, list):
        return []
    urls: list[str] = []
    for part in content:
        if part.type == "image_url" and part.image_url is not None:
            urls.append(part.image_url.url)
        elif part.type != "text":
            raise ApiError(
                400,
                f"content part of type {part.type!r} is not supported; send text and "
                "image_url parts",
                code="unsupported_content",
                param="messages",
            )
    return urls


def _text(message: _Message) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text or "" for part in content if part.type == "text")


def _remainder(sent: str, text: str) -> str:
    """What is left to stream of ``text`` after the deltas already ``sent``."""
    if not sent:
        return text
    if text.startswith(sent):
        return text[len(sent) :]
    if sent.strip() == text.strip():
        return ""
    # The deltas were text the model streamed before a tool call; the answer is new.
    return "\n\n" + text


def _pieces(text: str) -> list[str]:
    return [text[i : i + _CHUNK_CHARS] for i in range(0, len(text), _CHUNK_CHARS)]


@final
class OpenAICompat:
    """The handlers, bound to one ``Service``."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def _model_ids(self, request: web.Request) -> list[str]:
        service = self.service
        token = current_token.get()
        if token is not None and token.flows is not None and service.flow_name not in token.flows:
            return []
        return [
            service.flow_name,
            *(f"{service.flow_name}:{a}" for a in sorted(service.runtime.agents)),
        ]

    async def list_models(self, request: web.Request) -> web.Response:
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": "relaybaton"}
            for model in self._model_ids(request)
        ]
        return web.Response(
            body=_encoder.encode({"object": "list", "data": data}),
            content_type="application/json",
        )

    def _parse(
        self, request: web.Request, chat: ChatRequest
    ) -> tuple[str | None, str, str, int, tuple[ImagePart, ...]]:
        """Check the request; return (start agent, conversation id, text, position, images)."""
        service = self.service
        limits = service.limits
        flow, _, agent = chat.model.partition(":")
        if flow != service.flow_name or (agent and agent not in service.runtime.agents):
            raise ApiError(
                404,
                f"model {chat.model!r} does not exist; this server serves "
                f"{', '.join(self._model_ids(request))}",
                code="model_not_found",
                param="model",
            )
        service.tokens.check_flow(current_token.get(), flow)
        if len(chat.messages) > limits.max_messages:
            raise ApiError(
                400,
                f"{len(chat.messages)} messages in one request; at most {limits.max_messages} "
                "are allowed (the server keeps the conversation: send the new message)",
                code="too_many_messages",
                param="messages",
            )
        if chat.n not in (None, 1):
            raise ApiError(400, "only n=1 is supported", code="unsupported_n", param="n")
        refuse_unsupported(chat.tools, chat.functions, chat.tool_choice)
        positions = [i for i, m in enumerate(chat.messages) if m.role == "user"]
        if not positions or positions[-1] != len(chat.messages) - 1:
            raise ApiError(
                400,
                "the last message must have role 'user': it is the new turn of the conversation",
                code="no_user_message",
                param="messages",
            )
        position = positions[-1]
        conversation_id = (
            request.headers.get("X-Relaybaton-Conversation-Id")
            or chat.user
            or new_conversation_id(service.forwarder)
        )
        if len(conversation_id) > 128:
            raise ApiError(
                400, "conversation id longer than 128 characters", code="invalid_conversation_id"
            )
        last = chat.messages[position]
        images = images_in(_image_urls(last), f"messages[{position}].content")
        return agent or None, conversation_id, _text(last), position, images

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        from relaybaton.service._server import decode_body  # noqa: PLC0415 - cycle

        service = self.service
        body = await read_body(request, service.limits.max_body_bytes)
        chat = decode_body(body, ChatRequest, service.limits)
        agent, conversation_id, text, position, images = self._parse(request, chat)
        schema = answer_schema(chat.response_format)
        seen = "\x00".join(i.url or i.data_base64 for i in images)  # another image: new turn
        if schema is not None:  # another format: another turn
            seen += "\x00" + _encoder.encode(schema).decode()
        message_id = (
            request.headers.get("Idempotency-Key")
            or hashlib.blake2b(
                f"{conversation_id}\x00{position}\x00{text}\x00{seen}".encode(), digest_size=12
            ).hexdigest()
        )
        # A journaled conversation continues from its journal (after a restart, or on the
        # node that took its partition over), never restarts empty over it.
        await service.runtime.conversations.load(conversation_id)
        if agent is not None:
            try:
                service.runtime.conversations.open(conversation_id, owner=agent)
            except OwnershipError as exc:
                raise ApiError(404, str(exc), code="model_not_found", param="model") from exc
        log = service.hub.log(conversation_id)
        log.readers += 1  # keeps the log (and this turn's events) while we answer
        # A streamed answer wants the deltas as the model sends them, unless they must be
        # checked against a schema first.
        live = int(chat.stream and schema is None)
        log.live += live
        try:
            start = log.next_id - 1
            message_id, future = service.submit(
                conversation_id, text, message_id[:200], "openai", images, schema
            )
            completion_id = f"chatcmpl-{message_id[:24]}"
            if not chat.stream:
                outcome = await wait_for_turn(
                    service.runtime.conversations, conversation_id, future
                )
                if isinstance(outcome, Paused) and schema is not None:
                    raise not_answered_yet(outcome.text)
                result = (
                    paused_result(outcome, message_id) if isinstance(outcome, Paused) else outcome
                )
                return self._whole(chat, completion_id, result, log.after(start)[0])
            return await self._stream(
                request, chat, completion_id, message_id, future, log, start, conversation_id
            )
        finally:
            log.readers -= 1
            log.live -= live

    def _waiting(self, conversation_id: str, future: asyncio.Future[TurnResult]) -> str | None:
        """The waiting reply, if the turn is paused for a person; else None."""
        conversation = self.service.runtime.conversation(conversation_id)
        if future.done() or conversation is None or not conversation.waiting_for_a_person:
            return None
        return waiting_reply(conversation_id, conversation.pending_approvals)

    def _usage(self, events: list[LoggedEvent], message_id: str) -> dict[str, int]:
        prompt = completion = 0
        for logged in events:
            if logged.message_id == message_id and isinstance(logged.event, ModelCallEvent):
                prompt += logged.event.input_tokens
                completion += logged.event.output_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _whole(
        self,
        chat: ChatRequest,
        completion_id: str,
        result: TurnResult,
        events: list[LoggedEvent],
    ) -> web.Response:
        if result.error:
            return web.Response(
                body=error_json(502, result.error, code="turn_failed"),
                status=502,
                content_type="application/json",
            )
        body = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": chat.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": self._usage(events, result.message_id),
        }
        return web.Response(body=_encoder.encode(body), content_type="application/json")

    async def _stream(  # noqa: PLR0917 - private; one caller passes the turn's state
        self,
        request: web.Request,
        chat: ChatRequest,
        completion_id: str,
        message_id: str,
        future: asyncio.Future[TurnResult],
        hub_log: EventLog,
        start: int,
        conversation_id: str = "",
    ) -> web.StreamResponse:
        checked = chat.response_format is not None and chat.response_format.get("type") != "text"
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        created = int(time.time())

        def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
            frame = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": chat.model,
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                ],
            }
            return b"data: " + _encoder.encode(frame) + b"\n\n"

        await response.write(chunk({"role": "assistant", "content": ""}))
        future.add_done_callback(lambda _: hub_log.wake())
        sent = ""
        last = start
        seen: list[LoggedEvent] = []
        try:
            while True:
                events, _missed = hub_log.after(last)
                for logged in events:
                    last = logged.id
                    if logged.message_id != message_id:
                        continue
                    seen.append(logged)
                    event = logged.event
                    if isinstance(event, ReplyDeltaEvent) and event.text and not checked:
                        sent += event.text
                        await response.write(chunk({"content": event.text}))
                    elif isinstance(event, ReplyEvent) and not event.error:
                        rest = _remainder(sent, event.text)
                        sent += rest
                        for piece in _pieces(rest):
                            await response.write(chunk({"content": piece}))
                if future.done() and not hub_log.after(last)[0]:
                    break
                waiting = self._waiting(conversation_id, future)
                if waiting is not None:  # a person decides later: say so now, and end
                    if checked:  # prose is not the structured answer: an error frame
                        refusal = not_answered_yet(waiting)
                        frame = error_json(409, refusal.message, code=refusal.code)
                        await response.write(b"data: " + frame + b"\n\n")
                    else:
                        await response.write(chunk({"content": waiting}))
                    break
                await hub_log.wait(self.service.limits.keepalive_s)
            result = future.result() if future.done() else None
            if result is None:
                await response.write(chunk({}, "stop"))
            elif result.error:
                error = error_json(502, result.error, code="turn_failed")
                await response.write(b"data: " + error + b"\n\n")
            else:
                await response.write(chunk({}, "stop"))
                options = chat.stream_options
                if options is not None and options.include_usage:
                    usage = {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": chat.model,
                        "choices": [],
                        "usage": self._usage(seen, message_id),
                    }
                    await response.write(b"data: " + _encoder.encode(usage) + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
        except ConnectionError as exc:  # ConnectionResetError is one
            # The client left; the turn goes on and its result is kept.
            _log.debug("completion_stream_closed_by_client", message_id=message_id, exc_info=exc)
        return response
