"""What the model adapters cost on top of the HTTP they send, and how fast they read streams.

Two figures, both measured in this run on this machine:

1. Per-call overhead. A local aiohttp server answers every POST with one fixed, realistic
   provider answer. For each provider, the same request bytes are sent (a) by a bare
   ``aiohttp`` POST that reads the body and (b) by the adapter's ``complete()``, which also
   encodes the request, decodes the answer into a ``ModelResponse``, prices it and runs the
   retry wrapper. Each side makes ``--calls`` calls per repetition; the median over
   ``--repeat`` repetitions of the per-call time is reported, with the difference (µs the
   adapter adds per call) and the ratio adapter / bare. The server's own cost is in both
   sides, so read the difference, not the absolute times.

2. Stream parsing throughput. A pre-framed SSE body of ``--events`` text deltas per
   provider is fed in 4 KiB chunks (no network) through ``iter_sse`` and the provider's
   stream assembler; the figure is deltas per second (median of the repetitions).

Run: ``python benchmarks/adapters.py`` (add ``--json`` for one JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from relaybaton.adapters import ModelRequest, RetryPolicy, ToolSpec, UserMessage
from relaybaton.adapters._anthropic import AnthropicAdapter, AnthropicStreamAssembler
from relaybaton.adapters._credentials import Secret
from relaybaton.adapters._gemini import GeminiAdapter, GeminiStreamAssembler
from relaybaton.adapters._openai import OpenAIChatAdapter, OpenAIStreamAssembler
from relaybaton.adapters._provider import ProviderAdapter
from relaybaton.adapters._sse import iter_sse

REQUEST = ModelRequest(
    instructions="You are a helpful assistant. Answer briefly.",
    messages=(UserMessage(text="What is the weather in Paris today? " * 8),),
    tools=(ToolSpec(name="get_weather", description="Weather for a city"),),
)
TEXT = "The weather in Paris is mild with light clouds and a gentle breeze. " * 4

ANSWERS: dict[str, dict[str, Any]] = {
    "openai": {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-5.2",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT,
                                              "refusal": None}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 60, "total_tokens": 180,
                  "prompt_tokens_details": {"cached_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0}},
    },
    "anthropic": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4-6",
        "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn",
        "stop_sequence": None, "usage": {"input_tokens": 120, "output_tokens": 60},
    },
    "gemini": {
        "candidates": [{"content": {"parts": [{"text": TEXT}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 60,
                          "totalTokenCount": 180},
        "modelVersion": "gemini-3-pro",
    },
}  # fmt: skip


def make_adapter(provider: str, base_url: str) -> ProviderAdapter:
    key = Secret("bench-key-0123456789")
    retry = RetryPolicy(attempts=1)
    if provider == "openai":
        return OpenAIChatAdapter("gpt-5.2", api_key=key, base_url=base_url, retry=retry)
    if provider == "anthropic":
        return AnthropicAdapter("claude-opus-4-6", api_key=key, base_url=base_url, retry=retry)
    return GeminiAdapter("gemini-3-pro", api_key=key, base_url=base_url, retry=retry)


async def start_server() -> tuple[web.AppRunner, str]:
    bodies = {p: json.dumps(a).encode() for p, a in ANSWERS.items()}

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        provider = request.match_info["provider"]
        return web.Response(body=bodies[provider], content_type="application/json")

    app = web.Application()
    app.router.add_post("/{provider}/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def timed(calls: int, once: Callable[[], Any]) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await once()
    return (time.perf_counter() - start) / calls


async def overhead(provider: str, base: str, calls: int, repeat: int) -> dict[str, float]:
    adapter = make_adapter(provider, f"{base}/{provider}")
    # The same URL and bytes the adapter sends, so the bare side does identical I/O.
    url = adapter._url(stream=False)
    body = msgspec.json.encode(adapter._encode(REQUEST, stream=False))
    headers = {"content-type": "application/json", "authorization": "Bearer bench"}
    session = aiohttp.ClientSession()

    async def bare() -> bytes:
        async with session.post(url, data=body, headers=headers) as response:
            return await response.read()

    async def full() -> object:
        return await adapter.complete(REQUEST)

    try:
        await timed(50, bare)  # warm both pools and caches
        await timed(50, full)
        bare_t, full_t = [], []
        for _ in range(repeat):  # interleaved, so drift hits both sides alike
            bare_t.append(await timed(calls, bare))
            full_t.append(await timed(calls, full))
    finally:
        await session.close()
        await adapter.aclose()
    b, f = statistics.median(bare_t), statistics.median(full_t)
    return {"bare_us": b * 1e6, "adapter_us": f * 1e6, "overhead_us": (f - b) * 1e6,
            "ratio": f / b}  # fmt: skip


def sse_body(provider: str, events: int) -> bytes:
    piece = "word "
    if provider == "openai":
        frames = [{"id": "c", "object": "chat.completion.chunk", "model": "gpt-5.2",
                   "choices": [{"index": 0, "delta": {"content": piece},
                                "finish_reason": None}]}] * events  # fmt: skip
        lines = [b"data: " + json.dumps(f).encode() + b"\n\n" for f in frames]
        return b"".join(lines) + b"data: [DONE]\n\n"
    if provider == "anthropic":
        delta = {"type": "content_block_delta", "index": 0,
                 "delta": {"type": "text_delta", "text": piece}}  # fmt: skip
        start = {"type": "message_start", "message": {"model": "m", "content": [],
                                                      "usage": {"input_tokens": 1}}}  # fmt: skip
        frames = [start, *([delta] * events), {"type": "message_stop"}]
        return b"".join(
            f"event: {f['type']}\ndata: {json.dumps(f)}\n\n".encode()  # type: ignore[index]
            for f in frames
        )
    frame = {"candidates": [{"content": {"parts": [{"text": piece}], "role": "model"}}]}
    last = {"candidates": [{"content": {"parts": [{"text": piece}], "role": "model"},
                            "finishReason": "STOP"}]}  # fmt: skip
    frames = [frame] * (events - 1) + [last]
    return b"".join(b"data: " + json.dumps(f).encode() + b"\r\n\r\n" for f in frames)


async def _chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


ASSEMBLERS: dict[str, Callable[[], Any]] = {
    "openai": OpenAIStreamAssembler,
    "anthropic": AnthropicStreamAssembler,
    "gemini": GeminiStreamAssembler,
}


async def throughput(provider: str, events: int, repeat: int) -> float:
    body = sse_body(provider, events)
    rates = []
    for _ in range(repeat):
        assembler = ASSEMBLERS[provider]()
        count = 0
        start = time.perf_counter()
        async for name, data in iter_sse(_chunks(body)):
            count += len(assembler.feed(name, data))
        assembler.finish()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runner, base = await start_server()
    try:
        result: dict[str, Any] = {"overhead": {}, "stream_events_per_s": {}}
        for provider in ANSWERS:
            result["overhead"][provider] = await overhead(provider, base, args.calls, args.repeat)
            result["stream_events_per_s"][provider] = await throughput(
                provider, args.events, args.repeat
            )
    finally:
        await runner.cleanup()
    if args.json:
        print(json.dumps(result))
        return
    print(f"per-call overhead ({args.calls} calls x {args.repeat} repetitions, medians)")
    for provider, o in result["overhead"].items():
        print(f"  {provider:<10} bare {o['bare_us']:8.1f} µs   adapter {o['adapter_us']:8.1f} µs"
              f"   +{o['overhead_us']:7.1f} µs   x{o['ratio']:.2f}")  # fmt: skip
    print(f"stream parsing ({args.events} deltas, 4 KiB chunks)")
    for provider, rate in result["stream_events_per_s"].items():
        print(f"  {provider:<10} {rate:12,.0f} events/s")


if __name__ == "__main__":
    asyncio.run(main())
