"""Keys never leave: the redaction processor, and a canary key driven through every adapter."""

from __future__ import annotations

import logging
import traceback
import uuid
from typing import Any

import msgspec
import pytest
import structlog

from relaybaton.adapters import (
    ModelCallRecord,
    ModelRequest,
    RetryPolicy,
    UserMessage,
    create_model_adapter,
)
from relaybaton.adapters._metrics import MeteredAdapter
from relaybaton.adapters._redact import redact_processor, redact_text
from relaybaton.errors import ModelError
from tests.adapters._fakes import StepClock
from tests.adapters._servers import FakeServer, Reply, anthropic_sse, gemini_sse, openai_sse

pytestmark = pytest.mark.anyio


def test_processor_redacts_by_key_name_at_any_depth() -> None:
    event = {
        "event": "calling",
        "headers": {"Authorization": "Bearer abc", "x-goog-api-key": "AIzaSecret"},
        "nested": [{"api_key": "v1"}, ({"password": "p"},)],
        "openai_api_key": "x",
        "count": 3,
    }
    out = redact_processor(None, "info", event)
    assert out["headers"] == {"Authorization": "[redacted]", "x-goog-api-key": "[redacted]"}
    assert out["nested"] == [{"api_key": "[redacted]"}, ({"password": "[redacted]"},)]
    assert out["openai_api_key"] == "[redacted]"
    assert out["count"] == 3


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-Abc123def456ghi789",
        "sk-ant-api03-abcdefghijklmnop_qrs-tuv",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv",
    ],
)
def test_text_redaction_catches_key_shapes_anywhere_in_a_string(secret: str) -> None:
    text = f"failed with key={secret}, retrying"
    assert secret not in redact_text(text)
    assert redact_text(text).startswith("failed with key=[redacted]")


def test_bearer_credentials_are_redacted_in_text() -> None:
    assert redact_text("Authorization: Bearer opaque-token-1") == "Authorization: Bearer [redacted]"


def _collect(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    cause = error.__cause__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__
    return texts


PROVIDERS: dict[str, tuple[str, str, Any, Any]] = {
    # provider: (model id, key variable, a streamed answer, an error body echoing the key)
    "openai": (
        "openai:gpt-5.2", "OPENAI_API_KEY",
        lambda: openai_sse({"model": "gpt-5.2", "choices": [
            {"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}),
        lambda key: {"error": {"message": f"Incorrect API key provided: {key}.",
                               "type": "invalid_request_error", "code": "invalid_api_key"}},
    ),
    "anthropic": (
        "anthropic:claude-opus-4-6", "ANTHROPIC_API_KEY",
        lambda: anthropic_sse(
            {"type": "message_start", "message": {"model": "m", "content": [],
                                                  "usage": {"input_tokens": 1}}},
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": "hi"}},
            {"type": "message_stop"}),
        lambda key: {"type": "error", "error": {"type": "authentication_error",
                                                "message": f"invalid x-api-key {key}"}},
    ),
    "gemini": (
        "gemini:gemini-3-pro", "GEMINI_API_KEY",
        lambda: gemini_sse({"candidates": [{"content": {"parts": [{"text": "hi"}]},
                                            "finishReason": "STOP"}]}),
        lambda key: {"error": {"code": 400, "message": f"API key not valid: {key}",
                               "status": "INVALID_ARGUMENT"}},
    ),
}  # fmt: skip


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_canary_key_appears_only_in_the_request_header(
    provider: str,
    server: FakeServer,
    captured_logs: list[str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = f"canary-{uuid.uuid4().hex}"
    model_id, variable, streamed, error_body = PROVIDERS[provider]
    server.enqueue(
        Reply.json({"error": {"message": "busy"}}, status=503),  # retried, and logged
        Reply.sse(streamed()),
        Reply.json(error_body(canary), status=401),
    )
    records: list[ModelCallRecord] = []
    inner = create_model_adapter(
        model_id, base_url=server.base_url, environ={variable: canary}, clock=StepClock(),
        retry=RetryPolicy(attempts=2, base_delay=0.0),
    )  # fmt: skip
    model = MeteredAdapter(inner, records.append)
    outputs: list[str] = [repr(inner), repr(model), repr(vars(inner))]
    request = ModelRequest(messages=(UserMessage(text="hello"),))
    try:
        events = [e async for e in model.stream(request)]
        outputs.append(repr(events))
        with pytest.raises(ModelError) as info:
            await model.complete(request)
        outputs += _collect(info.value)
        structlog.get_logger("test").error("call failed", exc_info=info.value, adapter=inner)
    finally:
        await model.aclose()
    outputs += captured_logs
    outputs += [r.getMessage() for r in caplog.records]
    outputs += [msgspec.json.encode(r).decode() for r in records]
    captured = capfd.readouterr()
    outputs += [captured.out, captured.err]
    assert any("model call retried" in line for line in captured_logs)
    assert [r.outcome for r in records] == ["ok", "AuthenticationError"]
    leaks = [text for text in outputs if canary in text]
    assert leaks == []
    # The key did travel, in the one place it must.
    assert all(canary in "".join(r.headers.values()) for r in server.received)
