"""What the three HTTP adapters share: the call, the stream, retries and pricing.

A provider module supplies pure pieces (encode a request, decode an answer, assemble a
stream) and a subclass of ``ProviderAdapter`` that says where to send them. This module
runs them over ``HttpClient``: ``complete`` retries the whole call; ``stream`` retries only
until its first event was yielded, after which a failure is a non-retryable
``StreamInterruptedError(emitted=True)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import ClassVar, Protocol

import aiohttp
import msgspec

from relaybaton.adapters._chat import (
    ModelRequest,
    ModelResponse,
    StreamDone,
    StreamEvent,
)
from relaybaton.adapters._credentials import Secret
from relaybaton.adapters._errorbody import ProviderReply
from relaybaton.adapters._estimate import with_estimated_usage
from relaybaton.adapters._http import HttpClient, Timeouts, iter_sse, model_error
from relaybaton.adapters._pricing import PriceTable
from relaybaton.adapters._protocol import Capabilities
from relaybaton.adapters._retry import RetryPolicy, current_retry_log, note_retry
from relaybaton.errors import ModelError
from relaybaton.runtime import Clock, MonotonicClock

__all__ = ["ProviderAdapter", "ProviderReply", "StreamAssembler"]


class StreamAssembler(Protocol):
    """Turns one provider's SSE payloads into stream events and the final answer."""

    @property
    def done(self) -> bool:
        """Whether the provider's end marker was seen."""
        ...

    def feed(self, event: str, data: str) -> list[StreamEvent]:
        """Take one SSE event; return the deltas it carries (raises ``ProviderReply``)."""
        ...

    def finish(self) -> ModelResponse:
        """The whole answer, once ``done``."""
        ...


_WIRE_ERRORS = (
    aiohttp.ClientError,
    TimeoutError,
    msgspec.DecodeError,
    msgspec.ValidationError,
    UnicodeDecodeError,
    ProviderReply,
)


class ProviderAdapter:
    """A ``ModelAdapter`` over one provider's HTTP API (subclassed once per provider).

    Cancelling ``complete`` or a ``stream`` abandons the request and releases its
    connection; ``aclose`` closes the pooled session and is idempotent.
    """

    provider: ClassVar[str]

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
    ) -> None:
        self._model = model
        self._provider_name = provider_name or self.provider
        self._base_url = base_url.rstrip("/")
        self._retry = retry or RetryPolicy()
        # Read by a retrying caller (a slot) to know it must mark its calls ``sending_once``.
        self.retries_itself = self._retry.attempts > 1
        self._prices = prices or PriceTable.default()
        self._clock: Clock = clock or MonotonicClock()
        self._capabilities = capabilities or Capabilities()
        self._http = HttpClient(
            provider=self._provider_name,
            headers=self._headers(api_key),
            timeouts=timeouts or Timeouts(),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self._base_url!r})"

    @property
    def name(self) -> str:
        """The model id as ``provider:model``."""
        return f"{self._provider_name}:{self._model}"

    @property
    def capabilities(self) -> Capabilities:
        """What this model accepts."""
        return self._capabilities

    # --- what a provider supplies ---------------------------------------------------------

    def _headers(self, api_key: Secret | None) -> Mapping[str, str]:
        raise NotImplementedError

    def _url(self, *, stream: bool) -> str:
        raise NotImplementedError

    def _encode(self, request: ModelRequest, *, stream: bool) -> dict[str, object]:
        raise NotImplementedError

    def _decode(self, body: bytes) -> ModelResponse:
        raise NotImplementedError

    def _assembler(self) -> StreamAssembler:
        raise NotImplementedError

    # --- the calls ------------------------------------------------------------------------

    def _priced(self, response: ModelResponse, request: ModelRequest) -> ModelResponse:
        model = response.model or self._model
        # A server that reports no usage (llama.cpp ignores include_usage) is estimated,
        # and says so, rather than counted as free.
        response = with_estimated_usage(request, response, self._provider_name)
        usage = self._prices.priced(self._provider_name, model, response.usage)
        return msgspec.structs.replace(response, usage=usage)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Send the request and return the whole answer, retrying per the policy.

        Under a ``ModelSlot`` (inside ``sending_once``) it sends once: the slot retries.
        """
        url = self._url(stream=False)
        body = msgspec.json.encode(self._encode(request, stream=False))

        async def send() -> ModelResponse:
            raw = await self._http.post(url, body)
            try:
                return self._priced(self._decode(raw), request)
            except _WIRE_ERRORS as exc:
                raise model_error(self._provider_name, where=f"POST {url}", exc=exc) from exc

        return await self._retry.call(send, clock=self._clock)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Yield the answer as it arrives, then one ``StreamDone``.

        A failure before the first yielded event is retried per the policy (under a
        ``ModelSlot``, by the slot); after it, the failure is raised as
        ``StreamInterruptedError(emitted=True)`` and never retried.
        Close the iterator (``aclosing``) when abandoning it early.
        """
        url = self._url(stream=True)
        body = msgspec.json.encode(self._encode(request, stream=True))
        policy = self._retry.in_context()  # a single send under a slot: the slot retries
        rng = policy.rng()
        started = self._clock.now()
        log = current_retry_log()
        retry = 0
        while True:
            try:
                async for event in self._stream_once(url, body, request):
                    yield event
            except ModelError as error:
                elapsed = self._clock.now() - started
                wait = policy.delay(error, retry=retry, elapsed=elapsed, rng=rng)
                if wait is None:
                    raise
                note_retry(log, error, retry=retry, wait=wait)
            else:
                return
            await self._clock.sleep(wait)
            retry += 1

    async def _stream_once(
        self, url: str, body: bytes, request: ModelRequest
    ) -> AsyncIterator[StreamEvent]:
        where = f"POST {url}"
        assembler = self._assembler()
        emitted = False
        async with self._http.open_stream(url, body) as response:
            try:
                async for name, data in iter_sse(response.content.iter_any()):
                    # Read to the end even after the end marker: Gemini has none and may send
                    # its final usage after the chunk carrying the finish reason.
                    for event in assembler.feed(name, data):
                        emitted = True
                        yield event
                if not assembler.done:
                    raise ProviderReply("truncated", "the body ended before the end marker")
            except _WIRE_ERRORS as exc:
                raise model_error(
                    self._provider_name, where=where, exc=exc, emitted=emitted
                ) from exc
        try:
            final = self._priced(assembler.finish(), request)
        except _WIRE_ERRORS as exc:
            raise model_error(self._provider_name, where=where, exc=exc) from exc
        yield StreamDone(response=final)

    async def aclose(self) -> None:
        """Close the pooled connections; idempotent. Calls after it fail with ModelError."""
        await self._http.aclose()
