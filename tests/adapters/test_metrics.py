"""MeteredAdapter: one record per call, with latency, TTFT, outcome, usage and retries."""

from __future__ import annotations

from typing import Any

import pytest

from relaybaton.adapters import (
    ModelCallRecord,
    ModelRequest,
    RequestMetadata,
    RetryPolicy,
    UserMessage,
)
from relaybaton.adapters._credentials import Secret
from relaybaton.adapters._metrics import MeteredAdapter
from relaybaton.adapters._openai import OpenAIChatAdapter
from relaybaton.errors import BadRequestError
from tests.adapters._fakes import StepClock
from tests.adapters._servers import FakeServer, Reply, openai_sse

pytestmark = pytest.mark.anyio

REQUEST = ModelRequest(
    messages=(UserMessage(text="hi"),),
    metadata=RequestMetadata(agent="triage", conversation_id="c-1"),
)
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
OK = {"model": "gpt-5.2", "choices": [{"index": 0, "message": {"role": "assistant",
      "content": "hello"}, "finish_reason": "stop"}], "usage": USAGE}  # fmt: skip


def metered(server: FakeServer, records: list[ModelCallRecord]) -> MeteredAdapter:
    inner = OpenAIChatAdapter(
        "gpt-5.2", api_key=Secret("sk-test-abcdefgh12345"), base_url=server.base_url,
        clock=StepClock(), retry=RetryPolicy(attempts=3, base_delay=0.0),
    )  # fmt: skip
    return MeteredAdapter(inner, records.append)


async def test_complete_reports_usage_cost_and_retries(server: FakeServer) -> None:
    busy = {"error": {"message": "overloaded", "type": "server_error"}}
    server.enqueue(Reply.json(busy, status=503), Reply.json(OK))
    records: list[ModelCallRecord] = []
    model = metered(server, records)
    try:
        await model.complete(REQUEST)
    finally:
        await model.aclose()
    (record,) = records
    assert (record.adapter, record.model, record.agent, record.conversation_id) == (
        "openai:gpt-5.2", "gpt-5.2", "triage", "c-1",
    )  # fmt: skip
    assert record.outcome == "ok"
    assert record.retries == 1
    assert record.usage.input_tokens == 10
    assert record.usage.cost_usd > 0
    assert record.ttft_s is None
    assert record.latency_s >= 0


async def test_failed_call_reports_the_error_class_and_re_raises(server: FakeServer) -> None:
    server.enqueue(Reply.json({"error": {"message": "bad"}}, status=400))
    records: list[ModelCallRecord] = []
    model = metered(server, records)
    with pytest.raises(BadRequestError):
        await model.complete(REQUEST)
    await model.aclose()
    assert [r.outcome for r in records] == ["BadRequestError"]
    assert records[0].usage.input_tokens == 0


def chunk(delta: dict[str, Any] | None, finish: str | None = None, **kw: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"model": "gpt-5.2", "choices": choices, **kw}


async def test_stream_reports_time_to_first_token_and_retries(server: FakeServer) -> None:
    server.enqueue(
        Reply.sse(openai_sse(chunk({"role": "assistant"}), done=False)),  # cut before text
        Reply.sse(
            openai_sse(
                chunk({"content": "he"}),
                chunk({"content": "llo"}, "stop"),
                chunk(None, usage=USAGE),
            )
        ),
    )
    records: list[ModelCallRecord] = []
    model = metered(server, records)
    try:
        events = [e async for e in model.stream(REQUEST)]
    finally:
        await model.aclose()
    assert len(events) == 3
    (record,) = records
    assert record.outcome == "ok"
    assert record.retries == 1
    assert record.ttft_s is not None
    assert 0 <= record.ttft_s <= record.latency_s
    assert record.usage.output_tokens == 5


async def test_abandoned_stream_is_reported_once(server: FakeServer) -> None:
    server.enqueue(Reply.sse(openai_sse(chunk({"content": "a"}), chunk({"content": "b"}, "stop"))))
    records: list[ModelCallRecord] = []
    model = metered(server, records)
    try:
        stream = model.stream(REQUEST)
        await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await model.aclose()
    assert [r.outcome for r in records] == ["abandoned"]
