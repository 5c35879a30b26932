"""How long until the first token, through ``serve``, next to the provider called directly?

The provider stand-in is a local aiohttp server that speaks OpenAI Chat Completions
streaming: its first content delta at once, then a few more ``--pace-ms`` apart, a usage
chunk and ``data: [DONE]``. Two ways to the same stand-in, measured in the same run, one
request at a time:

- ``direct``: a client streams from the stand-in itself;
- ``serve``: a client streams from relaybaton's OpenAI-compatible endpoint, whose flow has
  one agent on a slot with a fallback, a health board and the model supervisor (the
  routed streaming path), its model the OpenAI adapter pointed at the stand-in.

Figures: time to first token (the first chunk with content, as the client sees it), p50
and p90 over ``--requests`` requests, medians of ``--repeat`` runs; ``added_ms_p50`` is
serve's p50 minus direct's (target: ≤ 2 ms). The machine is shared and noisy: read the
difference of medians. Usage: ``python benchmarks/streaming.py [--json] [--requests N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relaybaton.actors import Agent, open_runtime  # noqa: E402
from relaybaton.actors.routing import (  # noqa: E402
    Candidate,
    HealthBoard,
    ModelSlot,
    open_model_supervisor,
)
from relaybaton.adapters import create_model_adapter  # noqa: E402
from relaybaton.cli._logging import configure_logging  # noqa: E402
from relaybaton.runtime import MonotonicClock  # noqa: E402
from relaybaton.service import ServiceLimits, create_service  # noqa: E402


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    frame = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-5.2",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
    return b"data: " + json.dumps(frame, separators=(",", ":")).encode() + b"\n\n"


def _stand_in(pace_s: float) -> web.Application:
    usage = {
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-5.2", "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }  # fmt: skip

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_chunk({"role": "assistant", "content": "Hello"}))
        for word in (" there,", " how", " can", " I", " help?"):
            await asyncio.sleep(pace_s)
            await response.write(_chunk({"content": word}))
        await response.write(_chunk({}, "stop"))
        await response.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    return app


@asynccontextmanager
async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _relaybaton(provider: str) -> AsyncIterator[str]:
    clock = MonotonicClock()
    env = {"OPENAI_API_KEY": "sk-bench"}
    primary = create_model_adapter(
        "openai:gpt-5.2", base_url=f"{provider}/v1", environ=env, clock=clock
    )
    fallback = create_model_adapter(
        "openai:gpt-5-mini", base_url=f"{provider}/v1", environ=env, clock=clock
    )
    board = HealthBoard(clock)
    slot = ModelSlot(
        "general",
        primary,
        clock=clock,
        board=board,
        candidates=[Candidate(primary), Candidate(fallback)],
    )
    agent = Agent(name="assistant", instructions="Answer.", model="general")
    try:
        async with (
            open_runtime(agent, models={"general": slot}, clock=clock, tracing=False) as runtime,
            open_model_supervisor(runtime.system, {"general": slot}, board),
        ):
            limits = ServiceLimits(rate_per_s=1e9, burst=1_000_000_000)
            service = create_service(runtime, flow_name="bench", limits=limits)
            try:
                async with _serve(service.app) as url:
                    yield url
            finally:
                service.close()
    finally:
        await primary.aclose()
        await fallback.aclose()


async def _ttft(http: aiohttp.ClientSession, url: str, body: dict[str, object]) -> float:
    started = time.perf_counter()
    first = 0.0
    async with http.post(url, json=body) as response:
        async for line in response.content:
            # The first chunk with text; the role chunk's empty content does not count.
            has_text = b'"content":"' in line and b'"content":""' not in line
            if not first and line.startswith(b"data: {") and has_text:
                first = time.perf_counter() - started
        if response.status != 200 or not first:
            raise RuntimeError(f"no content from {url} (status {response.status})")
    return first


async def _series(url: str, body: dict[str, object], requests: int) -> list[float]:
    async with aiohttp.ClientSession() as http:
        for _ in range(10):  # warm-up: connections, caches
            await _ttft(http, url, body)
        return [await _ttft(http, url, body) for _ in range(requests)]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


async def _measure(requests: int, repeat: int, pace_s: float) -> dict[str, dict[str, float]]:
    runs: dict[str, list[list[float]]] = {"direct": [], "serve": []}
    direct_body = {
        "model": "gpt-5.2",
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    serve_body = {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    async with _serve(_stand_in(pace_s)) as provider:
        for _ in range(repeat):
            runs["direct"].append(
                await _series(f"{provider}/v1/chat/completions", direct_body, requests)
            )
            async with _relaybaton(provider) as url:
                # No conversation id: a fresh conversation per request, never a repeat.
                runs["serve"].append(
                    await _series(f"{url}/v1/chat/completions", serve_body, requests)
                )
    rows = {
        name: {
            "ttft_p50_ms": statistics.median(_quantile(r, 0.5) for r in results),
            "ttft_p90_ms": statistics.median(_quantile(r, 0.9) for r in results),
        }
        for name, results in runs.items()
    }
    rows["added"] = {
        "added_ms_p50": rows["serve"]["ttft_p50_ms"] - rows["direct"]["ttft_p50_ms"],
        "added_ms_p90": rows["serve"]["ttft_p90_ms"] - rows["direct"]["ttft_p90_ms"],
        "ratio_p50": rows["serve"]["ttft_p50_ms"] / rows["direct"]["ttft_p50_ms"],
    }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pace-ms", type=float, default=5.0, help="between the stand-in's deltas")
    args = parser.parse_args()
    configure_logging("warning")
    rows = asyncio.run(_measure(args.requests, args.repeat, args.pace_ms / 1000))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for name in ("direct", "serve"):
        row = rows[name]
        print(f"{name:<7} ttft p50 {row['ttft_p50_ms']:6.2f} ms   p90 {row['ttft_p90_ms']:6.2f} ms")
    added = rows["added"]
    print(
        f"added   p50 {added['added_ms_p50']:+.2f} ms (target ≤ 2)   "
        f"p90 {added['added_ms_p90']:+.2f} ms   ratio p50 x{added['ratio_p50']:.2f}"
    )


if __name__ == "__main__":
    main()
