"""A fake provider: an aiohttp server on 127.0.0.1 that replays scripted replies byte for byte.

Each test enqueues ``Reply`` values; the server answers the next request with the next
reply (headers, status, body, or SSE chunks written one by one), records what it received,
and can stall before the first byte or cut the connection mid-body. The ``*_sse`` helpers
frame payloads exactly as each provider does.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.adapters._wire import check_chat_request


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: bytes | None = None
    chunks: list[bytes] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # before the response head: a slow first byte
    cut: bool = False  # close the connection after the chunks, without ending the body

    @classmethod
    def json(cls, doc: object, status: int = 200, **headers: str) -> Reply:
        return cls(
            status=status,
            body=json.dumps(doc).encode(),
            headers={"content-type": "application/json", **headers},
        )

    @classmethod
    def sse(cls, chunks: list[bytes], *, cut: bool = False) -> Reply:
        return cls(
            chunks=chunks,
            cut=cut,
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"},
        )


@dataclass
class Received:
    """One request the server got."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeServer:
    """Serves scripted replies on an ephemeral loopback port.

    A ``/chat/completions`` body is checked first as strictly as the strictest servers
    that take it (``tests/adapters/_wire.py``): one they would refuse gets their 400, and
    ``refused`` keeps why.
    """

    def __init__(self) -> None:
        self.refused: list[str] = []
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def enqueue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(
            Received(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=await request.read(),
            )
        )
        if request.path.endswith("/chat/completions"):
            problem = check_chat_request(self.received[-1].body)
            if problem is not None:
                self.refused.append(problem)
                error = {"message": problem, "type": "invalid_request_error", "code": None}
                return web.json_response({"error": error}, status=400)
        reply = self.replies.popleft() if self.replies else Reply(status=500, body=b"no reply")
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.body is not None:
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        await response.prepare(request)
        for chunk in reply.chunks:
            await response.write(chunk)
        if reply.cut:
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write_eof()
        return response


# --- framing, as each provider writes it --------------------------------------------------


def openai_sse(*payloads: object, done: bool = True) -> list[bytes]:
    """``data: {json}`` events separated by a blank line, then ``data: [DONE]``."""
    out = [b"data: " + json.dumps(p, separators=(",", ":")).encode() + b"\n\n" for p in payloads]
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


def anthropic_sse(*payloads: dict[str, Any]) -> list[bytes]:
    """Named events: ``event: <type>`` then ``data: {json}``, the name equal to ``type``."""
    return [
        f"event: {p['type']}\ndata: {json.dumps(p, separators=(',', ':'))}\n\n".encode()
        for p in payloads
    ]


def gemini_sse(*payloads: object) -> list[bytes]:
    """``data: {json}`` events ending in CRLF CRLF, as the alt=sse endpoint sends them."""
    return [
        b"data: " + json.dumps(p, separators=(",", ":")).encode() + b"\r\n\r\n" for p in payloads
    ]
