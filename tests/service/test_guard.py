"""Guarding the edge: auth, body and shape limits, rate and concurrency, backpressure."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from relaybaton.errors import ConfigError
from relaybaton.service import ServiceLimits, TokenTable
from relaybaton.service._errors import ApiError
from tests.service._support import serving

pytestmark = pytest.mark.anyio

TOKEN = "tok-" + "a" * 28
OTHER = "tok-" + "b" * 28


def test_tokens_parse_flows_and_refuse_short_ones() -> None:
    table = TokenTable.from_environment({"RELAYBATON_API_TOKENS": f"{TOKEN}, {OTHER}:x|y"})
    assert [t.flows for t in table.tokens] == [None, frozenset({"x", "y"})]
    assert TOKEN not in repr(table.tokens)
    with pytest.raises(ConfigError, match="at least 16 characters"):
        TokenTable.from_environment({"RELAYBATON_API_TOKENS": "short"})


def test_without_tokens_only_loopback_clients_are_served() -> None:
    table = TokenTable()
    assert table.authenticate(None, "127.0.0.1") is None
    assert table.authenticate(None, "::1") is None
    with pytest.raises(ApiError, match="loopback clients only") as refused:
        table.authenticate(None, "10.1.2.3")
    assert refused.value.status == 403


async def test_missing_wrong_and_right_tokens_and_flows() -> None:
    tokens = TokenTable.from_environment({"RELAYBATON_API_TOKENS": f"{TOKEN},{OTHER}:another_flow"})
    async with serving(tokens=tokens) as served, aiohttp.ClientSession() as http:
        url = f"{served.url}/v1/conversations/a/messages"
        missing = await http.post(url, json={"text": "hi"})
        assert missing.status == 401
        assert (await missing.json())["error"]["code"] == "missing_token"
        wrong = await http.post(url, json={"text": "hi"}, headers={"Authorization": "Bearer x"})
        assert wrong.status == 401
        right = await http.post(
            url, json={"text": "hi"}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert right.status == 200
        other = await http.post(
            url, json={"text": "hi"}, headers={"Authorization": f"Bearer {OTHER}"}
        )
        assert other.status == 403
        assert (await other.json())["error"]["code"] == "flow_not_allowed"
        assert (await http.get(f"{served.url}/healthz")).status == 200  # probes need no token


async def test_abuse_gets_the_right_status_while_health_keeps_answering() -> None:
    limits = ServiceLimits(max_body_bytes=512_000, max_depth=16, max_text_chars=1000)
    async with serving(limits=limits) as served, aiohttp.ClientSession() as http:
        url = f"{served.url}/v1/conversations/a/messages"
        chat = f"{served.url}/v1/chat/completions"
        deep = ("[" * 5000) + ("]" * 5000)
        ten_k = {
            "model": "support",
            "messages": [{"role": "user", "content": "x"}] * 10_000,
        }

        async def chunked() -> bytes:
            async def body():  # type: ignore[no-untyped-def]
                for _ in range(600):
                    yield b"x" * 1000

            response = await http.post(url, data=body())
            return f"{response.status}".encode()

        cases = {
            "oversize": http.post(url, data=b"{" + b" " * 600_000 + b"}"),
            "bad_json": http.post(url, data=b'{"text": '),
            "empty": http.post(url, data=b""),
            "deep": http.post(url, data=f'{{"text": "a", "x": {deep}}}'.encode()),
            "deep_in_text": http.post(url, json={"text": "[" * 900}),
            "long_text": http.post(url, json={"text": "y" * 1001}),
            "unknown_field": http.post(url, json={"text": "a", "extra": 1}),
            "ten_k_messages": http.post(
                chat, data=json.dumps(ten_k, separators=(",", ":")).encode()
            ),
        }
        probes = [http.get(f"{served.url}/healthz") for _ in range(20)]
        answers = await asyncio.gather(*cases.values(), *probes)
        statuses = {name: r.status for name, r in zip(cases, answers, strict=False)}
        assert statuses == {
            "oversize": 413,
            "bad_json": 400,
            "empty": 400,
            "deep": 400,
            "deep_in_text": 200,  # brackets inside a string are text, not nesting
            "long_text": 400,
            "unknown_field": 400,
            "ten_k_messages": 400,
        }
        assert all(r.status == 200 for r in answers[len(cases) :])
        codes = {
            name: ((await r.json()).get("error") or {}).get("code")
            for name, r in zip(cases, answers, strict=False)
        }
        assert codes["deep"] == "too_deep"
        assert codes["ten_k_messages"] == "too_many_messages"
        assert codes["oversize"] == "body_too_large"
        assert await chunked() == b"413"
        metrics = await (await http.get(f"{served.url}/metrics")).text()
        assert 'relaybaton_http_refusals_total{reason="body_too_large"} 2.0' in metrics
        assert 'relaybaton_http_refusals_total{reason="too_deep"} 1.0' in metrics


async def test_rate_limit_answers_429_with_retry_after() -> None:
    limits = ServiceLimits(rate_per_s=0.5, burst=2)
    async with serving(limits=limits) as served, aiohttp.ClientSession() as http:
        url = f"{served.url}/v1/conversations/r/messages"
        answers = [await http.post(url, json={"text": "hi"}) for _ in range(3)]
        assert [a.status for a in answers] == [200, 200, 429]
        assert answers[2].headers["Retry-After"] == "2"
        assert (await answers[2].json())["error"]["type"] == "rate_limit_error"


async def test_concurrency_limit_and_backpressure_answer_429_and_503() -> None:
    gate = asyncio.Event()
    limits = ServiceLimits(max_concurrent=2, max_pending_per_conversation=1)
    async with serving(limits=limits, gate=gate) as served, aiohttp.ClientSession() as http:
        url = f"{served.url}/v1/conversations/busy/messages"
        held = asyncio.ensure_future(http.post(url, json={"text": "first"}))
        # The first turn is active (held at the model's gate) once the runtime accepted it.
        # The runtime has no "accepted" event to wait on; yield until its counter moves.
        while served.runtime.conversations.turns_accepted < 1:  # noqa: ASYNC110
            await asyncio.sleep(0)
        queued = await http.post(f"{url}?wait=false", json={"text": "second"})
        assert queued.status == 202
        refused = await http.post(f"{url}?wait=false", json={"text": "third"})
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "1"
        assert (await refused.json())["error"]["code"] == "conversation_busy"
        other = asyncio.ensure_future(
            http.post(f"{served.url}/v1/conversations/o/messages", json={"text": "x"})
        )
        while served.runtime.conversations.turns_accepted < 3:  # noqa: ASYNC110
            await asyncio.sleep(0)
        too_many = await http.get(f"{served.url}/v1/models")
        assert too_many.status == 429
        assert (await too_many.json())["error"]["code"] == "concurrency_limit"
        gate.set()
        assert (await held).status == 200
        assert (await other).status == 200
        metrics = await (await http.get(f"{served.url}/metrics")).text()
        assert 'relaybaton_http_refusals_total{reason="conversation_busy"} 1.0' in metrics
        assert 'relaybaton_http_refusals_total{reason="concurrency_limit"} 1.0' in metrics
