"""The HTTP piece every provider adapter shares: one session, SSE framing, and error mapping.

``HttpClient`` owns one ``aiohttp.ClientSession`` per adapter, created lazily inside the
running loop (a session made outside a loop binds to the wrong one) and closed by
``aclose``. ``model_error``
is the one choke point where aiohttp exceptions, HTTP statuses and the three providers'
error bodies become ``relaybaton.errors``; nothing else in the adapters builds a
``ModelError`` from a foreign error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import final

import aiohttp
import msgspec

from relaybaton.adapters._errorbody import (
    ProviderErrorBody,
    ProviderReply,
    parse_error_body,
    retry_after_of,
)
from relaybaton.adapters._redact import redact_text
from relaybaton.adapters._sse import iter_sse
from relaybaton.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    MalformedResponseError,
    ModelConnectionError,
    ModelError,
    ModelOverloadedError,
    ModelTimeoutError,
    RateLimitedError,
    StreamInterruptedError,
)

__all__ = ["AIOHTTP_ERRORS", "HttpClient", "Timeouts", "iter_sse", "model_error"]


class Timeouts(msgspec.Struct, frozen=True, kw_only=True):
    """Seconds allowed to connect, to wait for the first byte (and between reads), in total.

    ``first_byte`` is aiohttp's ``sock_read``: it bounds the wait for the response head and
    every later gap between chunks, which is what a stalled stream looks like.
    """

    connect: float = 10.0
    first_byte: float = 120.0
    total: float = 600.0


_ce = aiohttp.client_exceptions

# Keyed by exact class so that a class aiohttp adds later fails the coverage test and gets a
# deliberate decision here, instead of silently inheriting its parent's mapping.
AIOHTTP_ERRORS: dict[type[aiohttp.ClientError], type[ModelError]] = {
    _ce.ClientError: ModelConnectionError,
    _ce.ClientConnectionError: ModelConnectionError,
    _ce.ClientConnectionResetError: ModelConnectionError,
    _ce.ClientOSError: ModelConnectionError,
    _ce.ClientConnectorError: ModelConnectionError,
    _ce.ClientConnectorDNSError: ModelConnectionError,
    _ce.ClientProxyConnectionError: ModelConnectionError,
    _ce.UnixClientConnectorError: ModelConnectionError,
    _ce.ClientSSLError: ModelConnectionError,
    _ce.ClientConnectorSSLError: ModelConnectionError,
    _ce.ClientConnectorCertificateError: ModelConnectionError,
    _ce.ServerConnectionError: ModelConnectionError,
    _ce.ServerDisconnectedError: ModelConnectionError,
    _ce.ServerFingerprintMismatch: ModelConnectionError,
    _ce.ServerTimeoutError: ModelTimeoutError,
    _ce.ConnectionTimeoutError: ModelTimeoutError,
    _ce.SocketTimeoutError: ModelTimeoutError,
    _ce.ClientResponseError: MalformedResponseError,
    _ce.ContentTypeError: MalformedResponseError,
    _ce.WSServerHandshakeError: ModelConnectionError,
    _ce.ClientHttpProxyError: ModelConnectionError,
    _ce.TooManyRedirects: BadRequestError,
    _ce.ClientPayloadError: StreamInterruptedError,
    _ce.UploadAbortedError: ModelConnectionError,
    _ce.InvalidURL: BadRequestError,
    _ce.InvalidUrlClientError: BadRequestError,
    _ce.InvalidUrlRedirectClientError: BadRequestError,
    _ce.RedirectClientError: BadRequestError,
    _ce.NonHttpUrlClientError: BadRequestError,
    _ce.NonHttpUrlRedirectClientError: BadRequestError,
}

# Certificate and fingerprint failures do not heal by themselves; retrying only burns time.
_PERMANENT_CONNECTION_ERRORS = (_ce.ClientSSLError, _ce.ServerFingerprintMismatch)

_HINTS: dict[type[ModelError], str] = {
    RateLimitedError: "lower the request rate or raise the quota",
    ModelOverloadedError: "retry later or fail over to another model",
    ModelTimeoutError: "raise the timeout or retry",
    ModelConnectionError: "check the base URL and that the server is reachable",
    AuthenticationError: "check the API key variable and the key's access to this model",
    BadRequestError: "fix the request or the model id; sending it again will fail again",
    ContextLengthExceededError: "shorten the history or pick a model with a larger window",
    ContentFilteredError: "rephrase the content; the provider refused it",
    MalformedResponseError: "retry; if it persists the server does not speak this protocol",
    StreamInterruptedError: "retry the call if nothing was shown to the user yet",
    ModelError: "retry later",
}


def _error_class_for_status(status: int, body: ProviderErrorBody) -> type[ModelError]:
    if body.context_length:
        return ContextLengthExceededError
    if body.content_filtered:
        return ContentFilteredError
    if body.auth:
        return AuthenticationError
    if status == 429:
        return RateLimitedError
    if status in (503, 529) or body.overloaded:
        return ModelOverloadedError
    if status in (408, 504):
        return ModelTimeoutError
    if status in (401, 403):
        return AuthenticationError
    if 400 <= status < 500:
        return BadRequestError
    return ModelError


def _phase_of(exc: BaseException) -> str:
    if isinstance(exc, _ce.ConnectionTimeoutError):
        return "connect"
    if isinstance(exc, _ce.ServerTimeoutError):
        return "first_byte"
    return "total"


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    # A half-built foreign exception must not hide the real failure behind its own.
    except Exception:
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def model_error(
    provider: str,
    *,
    where: str,
    exc: BaseException | None = None,
    status: int | None = None,
    body: bytes | str = b"",
    headers: Mapping[str, str] | None = None,
    emitted: bool = False,
) -> ModelError:
    """Translate one failure into the project's exception tree: the single choke point.

    Args:
        provider: the provider name the message and the error carry.
        where: what was being done, e.g. ``POST http://host/v1/messages``.
        exc: an aiohttp exception, a ``TimeoutError`` or a msgspec decode error, if any.
        status: the HTTP status of an error response (``None`` for an in-stream error).
        body: the provider's error body, in any of the three providers' shapes.
        headers: the response headers, read for ``retry-after``.
        emitted: whether a stream already yielded events; then any failure is a
            non-retryable ``StreamInterruptedError``.

    Returns:
        The error to raise (``raise model_error(...) from exc``); its message is redacted.
    """
    if isinstance(exc, ProviderReply):
        if exc.kind == "error":
            return _from_response(provider, where, None, exc.detail, {}, emitted=emitted)
        return _from_reply(provider, where, exc, emitted=emitted)
    if exc is not None:
        return _from_exception(provider, where, exc, emitted=emitted)
    return _from_response(provider, where, status, body, headers or {}, emitted=emitted)


def _from_reply(provider: str, where: str, reply: ProviderReply, *, emitted: bool) -> ModelError:
    detail = redact_text(reply.detail)[:500]
    if reply.kind == "truncated" or emitted:
        return StreamInterruptedError(
            f"{provider}: expected the stream's end marker, got {detail} at {where}; "
            f"{_HINTS[StreamInterruptedError]}",
            provider=provider,
            emitted=emitted,
        )
    if reply.kind == "filtered":
        return ContentFilteredError(
            f"{provider}: expected an answer, the provider withheld it ({detail}) at {where}; "
            f"{_HINTS[ContentFilteredError]}",
            provider=provider,
        )
    return MalformedResponseError(
        f"{provider}: expected an answer in the provider's format, got {detail} at {where}; "
        f"{_HINTS[MalformedResponseError]}",
        provider=provider,
    )


def _from_exception(provider: str, where: str, exc: BaseException, *, emitted: bool) -> ModelError:
    what = redact_text(_describe(exc))
    if emitted or isinstance(exc, _ce.ClientPayloadError):
        return StreamInterruptedError(
            f"{provider}: expected the rest of the response, the connection ended with {what} "
            f"at {where}; {_HINTS[StreamInterruptedError]}",
            provider=provider,
            emitted=emitted,
        )
    if isinstance(exc, (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)):
        return MalformedResponseError(
            f"{provider}: expected a JSON answer in the provider's format, got {what} "
            f"at {where}; {_HINTS[MalformedResponseError]}",
            provider=provider,
        )
    cls: type[ModelError] = ModelConnectionError
    for klass in type(exc).__mro__:
        if klass in AIOHTTP_ERRORS:
            cls = AIOHTTP_ERRORS[klass]
            break
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        cls = ModelTimeoutError
    if cls is ModelTimeoutError:
        phase = _phase_of(exc)
        return ModelTimeoutError(
            f"{provider}: expected a response, timed out ({phase}) at {where}; "
            f"{_HINTS[ModelTimeoutError]}",
            provider=provider,
            phase=phase,
        )
    message = f"{provider}: request failed with {what} at {where}; {_HINTS[cls]}"
    if cls is StreamInterruptedError:
        return StreamInterruptedError(message, provider=provider, emitted=False)
    error = cls(message, provider=provider)
    if isinstance(exc, _PERMANENT_CONNECTION_ERRORS):
        error.retryable = False
    return error


def _from_response(
    provider: str,
    where: str,
    status: int | None,
    body: bytes | str,
    headers: Mapping[str, str],
    *,
    emitted: bool,
) -> ModelError:
    parsed = parse_error_body(body)
    effective = status if status is not None else parsed.implied_status
    cls = _error_class_for_status(effective, parsed)
    code = f" {parsed.kind}" if parsed.kind else ""
    got = f"HTTP {status}{code}" if status is not None else f"an error event{code}"
    detail = redact_text(parsed.message)[:500] or "(no message)"
    retry_after = retry_after_of(headers, parsed)
    hint = _HINTS[cls]
    if retry_after is not None:
        hint = f"retry after {retry_after:g} s, or {hint}"
    message = f"{provider}: expected a successful answer, got {got} at {where}: {detail}; {hint}"
    if emitted:
        return StreamInterruptedError(
            f"{message} (the stream had already yielded events, so it is not retried)",
            provider=provider,
            emitted=True,
        )
    if cls is RateLimitedError:
        error: ModelError = RateLimitedError(
            message, provider=provider, status=status, retry_after=retry_after
        )
        # An exhausted quota answers 429 too, but no amount of waiting clears it.
        error.retryable = not parsed.quota_exhausted
        return error
    if cls is ModelTimeoutError:
        error = ModelTimeoutError(message, provider=provider, phase="total")
        error.status = status
        return error
    error = cls(message, provider=provider, status=status)
    if cls is ModelError:
        error.retryable = effective >= 500
    return error


@final
class HttpClient:
    """One pooled ``aiohttp.ClientSession`` for one adapter, made on first use in the loop.

    The session carries the default headers (including the key, revealed only here) so
    that nothing else in the adapter ever holds the key as a plain string.
    """

    def __init__(
        self,
        *,
        provider: str,
        headers: Mapping[str, str],
        timeouts: Timeouts,
        connections: int = 64,
    ) -> None:
        self._provider = provider
        self._headers = dict(headers)
        self._timeouts = timeouts
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"HttpClient(provider={self._provider!r}, closed={self._closed})"

    def _get_session(self, where: str) -> aiohttp.ClientSession:
        if self._closed:
            raise ModelError(
                f"{self._provider}: expected an open adapter, got one closed by aclose() at "
                f"{where}; create a new adapter",
                provider=self._provider,
            )
        if self._session is None:
            t = self._timeouts
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                timeout=aiohttp.ClientTimeout(
                    total=t.total, connect=t.connect, sock_read=t.first_byte
                ),
                headers=self._headers,
                raise_for_status=False,
            )
        return self._session

    async def post(self, url: str, body: bytes) -> bytes:
        """POST ``body`` as JSON and return the 2xx body; any failure is a ``ModelError``."""
        where = f"POST {url}"
        session = self._get_session(where)
        try:
            async with session.post(url, data=body, headers=_JSON) as response:
                data = await response.read()
                if response.status >= 300:
                    raise model_error(
                        self._provider,
                        where=where,
                        status=response.status,
                        body=data,
                        headers=response.headers,
                    )
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise model_error(self._provider, where=where, exc=exc) from exc

    @asynccontextmanager
    async def open_stream(self, url: str, body: bytes) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST ``body`` and yield the 2xx response whose body is an event stream.

        Errors before the response head (connect, first byte, an error status) are mapped
        here; the caller maps errors met while reading the body, since only it knows
        whether events were already emitted. The response is released on exit, also on
        cancel.
        """
        where = f"POST {url}"
        session = self._get_session(where)
        try:
            response = await session.post(url, data=body, headers=_SSE)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise model_error(self._provider, where=where, exc=exc) from exc
        try:
            if response.status >= 300:
                try:
                    data = await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    data = b""
                raise model_error(
                    self._provider,
                    where=where,
                    status=response.status,
                    body=data,
                    headers=response.headers,
                )
            yield response
        finally:
            response.release()

    async def aclose(self) -> None:
        """Close the session and its pooled connections; idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "application/json", "accept": "text/event-stream"}
