"""One metrics record per model call, for the supervisor's sliding windows.

``MeteredAdapter`` wraps any ``ModelAdapter`` (HTTP, scripted, simulated) and hands a
``ModelCallRecord`` to a sink after every ``complete`` and every ``stream``, whether it
succeeded, failed or was cancelled. The sink is a plain callable, called synchronously in
the caller's task: it must be quick and must not raise (e.g. ``send_nowait`` to a bounded
stream, dropping on overflow).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import final

import msgspec

from relaybaton.adapters._chat import (
    ModelRequest,
    ModelResponse,
    StreamDone,
    StreamEvent,
    Usage,
)
from relaybaton.adapters._protocol import Capabilities, ModelAdapter
from relaybaton.adapters._retry import RetryLog, recording_retries, retries_itself
from relaybaton.runtime import Clock, MonotonicClock

__all__ = ["MeteredAdapter", "MetricsSink", "ModelCallRecord"]


class ModelCallRecord(msgspec.Struct, frozen=True, kw_only=True, tag="model_call"):
    """What one model call cost and how it went.

    Attributes:
        adapter: the adapter's name, ``provider:model``.
        model: the model that answered (a dated snapshot, say), else the adapter's model.
        agent: the agent that asked, from ``ModelRequest.metadata``.
        conversation_id: the conversation, from ``ModelRequest.metadata``.
        started_at: the clock's time when the call started.
        latency_s: seconds until the whole answer (or the error) arrived.
        ttft_s: seconds until the first streamed delta; ``None`` for ``complete`` and for
            streams that yielded none.
        outcome: ``"ok"``, ``"cancelled"``, or the error class name (``RateLimitedError``).
        usage: tokens and dollars; empty when the call failed.
        retries: how many times the call was sent again.
        utility: a quality score set later by an evaluator; ``None`` here.
        slot: the model slot that routed the call, when a slot made it.
        shadow: a rollout's shadow copy of a call: its answer went nowhere and its cost
            was charged to no conversation, but it was spent.
    """

    adapter: str
    model: str
    agent: str
    conversation_id: str
    started_at: float
    latency_s: float
    ttft_s: float | None
    outcome: str
    usage: Usage
    retries: int
    utility: float | None = None
    slot: str = ""
    shadow: bool = False


MetricsSink = Callable[[ModelCallRecord], None]


@final
class MeteredAdapter:
    """A ``ModelAdapter`` that reports every call of the adapter it wraps.

    Errors and cancellation pass through unchanged after the record is handed over.
    """

    def __init__(
        self, inner: ModelAdapter, sink: MetricsSink, *, clock: Clock | None = None
    ) -> None:
        self._inner = inner
        self._sink = sink
        self._clock: Clock = clock or MonotonicClock()

    def __repr__(self) -> str:
        return f"MeteredAdapter({self._inner!r})"

    @property
    def inner(self) -> ModelAdapter:
        """The wrapped adapter."""
        return self._inner

    @property
    def retries_itself(self) -> bool:
        """Whether the wrapped adapter retries on its own (see ``retries_itself``)."""
        return retries_itself(self._inner)

    @property
    def name(self) -> str:
        """The wrapped adapter's name."""
        return self._inner.name

    @property
    def capabilities(self) -> Capabilities:
        """The wrapped adapter's capabilities."""
        return self._inner.capabilities

    def _emit(
        self,
        request: ModelRequest,
        started: float,
        log: RetryLog,
        *,
        outcome: str,
        response: ModelResponse | None = None,
        ttft: float | None = None,
    ) -> None:
        model = response.model if response is not None and response.model else ""
        self._sink(
            ModelCallRecord(
                adapter=self._inner.name,
                model=model or self._inner.name.partition(":")[2],
                agent=request.metadata.agent,
                conversation_id=request.metadata.conversation_id,
                started_at=started,
                latency_s=self._clock.now() - started,
                ttft_s=ttft,
                outcome=outcome,
                usage=response.usage if response is not None else Usage(),
                retries=log.retries,
            )
        )

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Call the wrapped adapter and report the call."""
        started = self._clock.now()
        with recording_retries() as log:
            try:
                response = await self._inner.complete(request)
            except BaseException as exc:
                self._emit(request, started, log, outcome=_outcome(exc))
                raise
        self._emit(request, started, log, outcome="ok", response=response)
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream from the wrapped adapter and report the call when the stream ends."""
        started = self._clock.now()
        ttft: float | None = None
        events = self._inner.stream(request)
        # The retry log is captured by the inner stream on its first step, so that step
        # runs inside the recording block; the block is left before our first yield.
        with recording_retries() as log:
            first = await self._first(events, request, started, log)
        if first is None:
            return
        try:
            event: StreamEvent = first
            while True:
                if isinstance(event, StreamDone):
                    self._emit(request, started, log, outcome="ok", response=event.response,
                               ttft=ttft)  # fmt: skip
                    yield event
                    return
                if ttft is None:
                    ttft = self._clock.now() - started
                yield event
                event = await anext(events)
        except BaseException as exc:
            self._emit(request, started, log, outcome=_outcome(exc), ttft=ttft)
            raise
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    async def _first(
        self,
        events: AsyncIterator[StreamEvent],
        request: ModelRequest,
        started: float,
        log: RetryLog,
    ) -> StreamEvent | None:
        try:
            return await anext(events)
        except StopAsyncIteration:
            self._emit(request, started, log, outcome="MalformedResponseError")
            return None
        except BaseException as exc:
            self._emit(request, started, log, outcome=_outcome(exc))
            await events.aclose()  # type: ignore[attr-defined]
            raise

    async def aclose(self) -> None:
        """Close the wrapped adapter."""
        await self._inner.aclose()


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, GeneratorExit):
        return "abandoned"
    if not isinstance(exc, Exception):
        return "cancelled"
    return type(exc).__name__
