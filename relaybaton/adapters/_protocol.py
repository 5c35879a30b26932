"""The seam between agents and models: what every model adapter implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

import msgspec

from relaybaton.adapters._chat import ModelRequest, ModelResponse, StreamEvent

__all__ = ["Capabilities", "ModelAdapter"]


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    """What a model can take: routing never sends a call to a model lacking one of these."""

    tools: bool = True
    vision: bool = False
    context_tokens: int = 128_000


@runtime_checkable
class ModelAdapter(Protocol):
    """A model behind one provider's wire protocol.

    ``complete`` returns the whole answer; ``stream`` yields ``TextDelta`` and
    ``ToolCallDelta`` events and ends with one ``StreamDone`` holding the assembled answer.
    Both raise only ``relaybaton.errors.ModelError`` subclasses; cancelling either abandons
    the call and releases its connection.
    """

    @property
    def name(self) -> str:
        """The model id as ``provider:model``, e.g. ``openai:gpt-5.2``."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What this model accepts."""
        ...

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Send the request and return the whole answer."""
        ...

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Send the request and yield the answer as it arrives."""
        ...

    async def aclose(self) -> None:
        """Release connections; idempotent."""
        ...
