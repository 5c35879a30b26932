"""The scripted model: exact replies, in order, for tests. No network, no randomness."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import final

import msgspec

from relaybaton.adapters._chat import (
    AssistantMessage,
    ModelRequest,
    ModelResponse,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    Usage,
)
from relaybaton.adapters._protocol import Capabilities

__all__ = ["ScriptItem", "ScriptedModel", "tool_call"]

ScriptItem = str | ToolCall | list[ToolCall] | AssistantMessage | ModelResponse | BaseException
Script = Sequence[ScriptItem] | Callable[[ModelRequest], ScriptItem]


def tool_call(name: str, call_id: str | None = None, /, **arguments: object) -> ToolCall:
    """A tool call for a script: ``tool_call("refund", amount=40)``."""
    return ToolCall(
        id=call_id or f"call_{name}",
        name=name,
        arguments=msgspec.json.encode(arguments).decode(),
    )


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


@final
class ScriptedModel:
    """Answers from a script: a list consumed in order, or a function of the request.

    With ``per_conversation=True`` each conversation id walks the list from its start, so
    many conversations can share one scripted model. An exception in the script is raised.
    ``gate``, when set, is awaited before each answer (to hold calls in flight in tests).
    Every request is kept in ``requests``.
    """

    def __init__(
        self,
        script: Script,
        *,
        name: str = "scripted",
        per_conversation: bool = False,
        capabilities: Capabilities | None = None,
        cost_per_call: float = 0.0,
        gate: asyncio.Event | None = None,
        keep_requests: bool = True,
    ) -> None:
        self._script = script
        self._name = name
        self._per_conversation = per_conversation
        self._capabilities = capabilities or Capabilities(vision=True)
        self._cost = cost_per_call
        self._positions: defaultdict[str, int] = defaultdict(int)
        self.gate = gate
        self.keep_requests = keep_requests
        self.requests: list[ModelRequest] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def _next(self, request: ModelRequest) -> ScriptItem:
        script = self._script
        if callable(script):
            return script(request)
        key = request.metadata.conversation_id if self._per_conversation else ""
        position = self._positions[key]
        if position >= len(script):
            raise IndexError(
                f"scripted model {self._name!r} ran out of replies after {len(script)} "
                f"(conversation {key!r}); add more to its script"
            )
        self._positions[key] = position + 1
        return script[position]

    async def complete(self, request: ModelRequest) -> ModelResponse:
        if self.keep_requests:
            self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        item = self._next(request)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, ModelResponse):
            return item
        if isinstance(item, str):
            message = AssistantMessage(text=item)
        elif isinstance(item, ToolCall):
            message = AssistantMessage(tool_calls=(item,))
        elif isinstance(item, list):
            message = AssistantMessage(tool_calls=tuple(item))
        else:
            message = item
        return ModelResponse(
            message=message,
            usage=Usage(
                input_tokens=len(request.messages) * 8,
                output_tokens=_estimate_tokens(message.text) + 8 * len(message.tool_calls),
                cost_usd=self._cost,
            ),
            model=self._name,
            finish_reason="tool_calls" if message.tool_calls else "stop",
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        response = await self.complete(request)
        for index, word in enumerate(response.message.text.split(" ")):
            yield TextDelta(text=word if index == 0 else f" {word}")
        yield StreamDone(response=response)

    async def aclose(self) -> None:
        return None
