"""The shared HTTP piece: SSE framing, the error choke point, timeouts, the loopback guard."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from relaybaton.adapters import Timeouts
from relaybaton.adapters._http import AIOHTTP_ERRORS, HttpClient, iter_sse, model_error
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
from tests.adapters._servers import FakeServer, Reply

pytestmark = pytest.mark.anyio


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _events(*parts: bytes) -> list[tuple[str, str]]:
    return [e async for e in iter_sse(_chunks(*parts))]


async def test_sse_joins_multiline_data_and_reads_event_names() -> None:
    events = await _events(b"event: ping\ndata: a\ndata: b\n\n", b"data: c\n\n")
    assert events == [("ping", "a\nb"), ("message", "c")]


async def test_sse_handles_crlf_and_cr_line_ends_even_when_split_across_chunks() -> None:
    events = await _events(b"data: one\r", b"\n\r\ndata: two\r\rdata: three\r\n", b"\r\n")
    assert events == [("message", "one"), ("message", "two"), ("message", "three")]


async def test_sse_skips_comments_and_blank_events_and_keeps_colons_in_data() -> None:
    events = await _events(b': keep-alive\n\n\ndata:{"a": "b:c"}\n\n')
    assert events == [("message", '{"a": "b:c"}')]


async def test_sse_drops_an_event_left_unterminated_at_the_end() -> None:
    assert await _events(b"data: whole\n\ndata: half") == [("message", "whole")]


async def test_sse_decodes_utf8_split_across_chunks() -> None:
    text = "héllo €".encode()
    assert await _events(b"data: " + text[:2], text[2:] + b"\n\n") == [("message", "héllo €")]


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_every_aiohttp_client_error_class_has_its_own_mapping() -> None:
    classes = {aiohttp.ClientError} | {
        c for c in _all_subclasses(aiohttp.ClientError) if c.__module__.startswith("aiohttp")
    }
    missing = sorted(c.__name__ for c in classes if c not in AIOHTTP_ERRORS)
    assert missing == []
    for cls in classes:
        exc = cls.__new__(cls)  # constructors differ; the mapping must not depend on them
        error = model_error("openai", where="POST http://x/chat/completions", exc=exc)
        assert isinstance(error, AIOHTTP_ERRORS[cls]), cls
        assert isinstance(error, ModelError)
        assert "POST http://x/chat/completions" in str(error)


def test_certificate_failures_are_not_retryable_but_resets_are() -> None:
    cert = aiohttp.ClientConnectorCertificateError.__new__(aiohttp.ClientConnectorCertificateError)
    reset = aiohttp.ServerDisconnectedError()
    assert not model_error("openai", where="w", exc=cert).retryable
    assert model_error("openai", where="w", exc=reset).retryable


def test_timeouts_name_their_phase() -> None:
    connect = model_error("openai", where="w", exc=aiohttp.ConnectionTimeoutError())
    read = model_error("openai", where="w", exc=aiohttp.SocketTimeoutError())
    total = model_error("openai", where="w", exc=TimeoutError())
    assert [e.phase for e in (connect, read, total)] == ["connect", "first_byte", "total"]  # type: ignore[attr-defined]
    assert all(isinstance(e, ModelTimeoutError) and e.retryable for e in (connect, read, total))


OPENAI_CONTEXT = (
    b'{"error": {"message": "This model\'s maximum context length is 128000 tokens. However, '
    b'your messages resulted in 130512 tokens.", "type": "invalid_request_error", '
    b'"param": "messages", "code": "context_length_exceeded"}}'
)
ANTHROPIC_OVERLOADED = (
    b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
)
GEMINI_EXHAUSTED = (
    b'{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", '
    b'"status": "RESOURCE_EXHAUSTED", "details": [{"@type": '
    b'"type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}}'
)


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "fragment"),
    [
        (400, OPENAI_CONTEXT, {}, ContextLengthExceededError, "context_length_exceeded"),
        (529, ANTHROPIC_OVERLOADED, {}, ModelOverloadedError, "HTTP 529 overloaded_error"),
        (503, b"upstream busy", {}, ModelOverloadedError, "upstream busy"),
        (429, GEMINI_EXHAUSTED, {}, RateLimitedError, "retry after 7 s"),
        (429, b"{}", {"retry-after": "3"}, RateLimitedError, "retry after 3 s"),
        (429, b"{}", {"retry-after-ms": "1500"}, RateLimitedError, "retry after 1.5 s"),
        (401, b'{"error":{"message":"bad key","code":"invalid_api_key"}}', {},
         AuthenticationError, "check the API key"),
        (404, b'{"error":{"message":"no such model"}}', {}, BadRequestError, "no such model"),
        (400, b'{"error":{"message":"flagged","code":"content_filter"}}', {},
         ContentFilteredError, "flagged"),
        (500, b"<html>oops</html>", {}, ModelError, "HTTP 500"),
    ],
)  # fmt: skip
def test_error_statuses_and_bodies_map_to_the_tree_with_a_helpful_message(
    status: int, body: bytes, headers: dict[str, str], expected: type, fragment: str
) -> None:
    error = model_error("prov", where="POST http://h/p", status=status, body=body, headers=headers)
    assert type(error) is expected
    assert fragment in str(error)
    assert str(error).startswith("prov: expected a successful answer, got HTTP")
    assert "at POST http://h/p" in str(error)
    assert error.status == status


def test_rate_limit_carries_retry_after_and_quota_exhaustion_is_not_retryable() -> None:
    limited = model_error("openai", where="w", status=429, body=b"{}", headers={"Retry-After": "2"})
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == 2.0
    assert limited.retryable
    quota = model_error(
        "openai", where="w", status=429,
        body=b'{"error":{"message":"You exceeded your current quota","type":"insufficient_quota",'
        b'"code":"insufficient_quota"}}',
    )  # fmt: skip
    assert isinstance(quota, RateLimitedError)
    assert not quota.retryable


def test_an_error_after_emitted_events_is_an_unretryable_interruption() -> None:
    error = model_error("anthropic", where="w", body=ANTHROPIC_OVERLOADED, emitted=True)
    assert isinstance(error, StreamInterruptedError)
    assert error.emitted
    assert not error.retryable
    assert "not retried" in str(error)


def test_provider_messages_echoing_a_key_are_redacted() -> None:
    body = b'{"error":{"message":"Incorrect API key provided: sk-proj-abcdefghijklmnop1234."}}'
    error = model_error("openai", where="w", status=401, body=body)
    assert "sk-proj-abcdefghijklmnop1234" not in str(error)
    assert "[redacted]" in str(error)


async def test_slow_first_byte_is_a_first_byte_timeout(server: FakeServer) -> None:
    server.enqueue(Reply.json({}, status=200), Reply(delay=0.5, body=b"{}"))
    client = HttpClient(
        provider="openai", headers={}, timeouts=Timeouts(connect=1, first_byte=0.1, total=5)
    )
    try:
        assert await client.post(server.base_url + "/x", b"{}") == b"{}"
        with pytest.raises(ModelTimeoutError) as info:
            await client.post(server.base_url + "/x", b"{}")
        assert info.value.phase == "first_byte"
    finally:
        await client.aclose()


async def test_refused_connection_is_a_retryable_connection_error() -> None:
    client = HttpClient(provider="openai", headers={}, timeouts=Timeouts(connect=1))
    try:
        with pytest.raises(ModelConnectionError) as info:
            await client.post("http://127.0.0.1:9/x", b"{}")
        assert info.value.retryable
        assert "check the base URL" in str(info.value)
    finally:
        await client.aclose()


async def test_a_non_json_success_body_is_malformed(server: FakeServer) -> None:
    from relaybaton.adapters._openai import decode_openai

    with pytest.raises(Exception) as info:  # noqa: PT011 - the msgspec error is mapped below
        decode_openai(b"<html>")
    error = model_error("openai", where="w", exc=info.value)
    assert isinstance(error, MalformedResponseError)


async def test_closed_client_refuses_calls_and_aclose_is_idempotent() -> None:
    client = HttpClient(provider="openai", headers={}, timeouts=Timeouts())
    await client.aclose()
    await client.aclose()
    with pytest.raises(ModelError, match="closed by aclose"):
        await client.post("http://127.0.0.1:9/x", b"{}")


async def test_guard_refuses_a_request_to_a_non_loopback_host() -> None:
    from tests.adapters.conftest import NonLoopbackRequestError

    async with aiohttp.ClientSession() as session:
        with pytest.raises(NonLoopbackRequestError):
            await session.get("http://192.0.2.1/")
