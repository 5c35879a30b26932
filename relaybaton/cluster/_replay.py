"""Answer a tunnelled HTTP request with this process's own aiohttp application, in process.

The owner does not call itself over HTTP: it builds an ``aiohttp.web.Request`` from the
tunnelled one and hands it to ``Application._handle``, aiohttp's own entry point for a
request (the one its server calls, and the one the A/B front already uses), so the
request passes the same middleware (auth, limits, error shapes) and handlers as one that
came in over a socket. The response is written through a ``FrameWriter``, an
``AbstractStreamWriter`` (aiohttp's public interface for where a response goes) that turns
the head and every body write into frames on the ingress's reply subject: a streamed
answer goes out write by write.

Why not a loopback socket: it would parse the request and response a second time per hop,
and the client's address (which loopback-only auth reads) would be lost on the way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast, final

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpVersion11
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from relaybaton.cluster._tunnel_wire import (
    MAX_CHUNK,
    Alive,
    Chunk,
    End,
    Failed,
    Frame,
    Head,
    Moved,
    TunnelRequest,
    encode,
)

__all__ = ["REPLAYED", "FrameSink", "FrameWriter", "keep_alive", "replay"]

REPLAYED = web.RequestKey("relaybaton.cluster.replayed_from", str)
"""Request-state key set on a replayed request (the ingress node): it is never forwarded again."""

# Framing is per hop: the ingress's own server frames its answer to its client.
_HOP_BY_HOP = frozenset(
    {"connection", "content-length", "date", "keep-alive", "server", "transfer-encoding"}
)


@final
class FrameSink:
    """Numbers frames and publishes them to one reply subject, in order.

    ``still_owner`` is asked before the head goes out: an answer made after the node lost
    the partition (the runtime refused it, or it raced the loss) is never sent; the ingress
    hears ``Moved`` and asks the new owner.
    """

    def __init__(
        self,
        publish: Callable[[bytes], Awaitable[None]],
        node: str,
        still_owner: Callable[[], bool] = lambda: True,
    ) -> None:
        self._publish = publish
        self.node = node
        self.still_owner = still_owner
        self.seq = 0
        self.head_sent = False
        self.finished = False
        self.last_sent = time.monotonic()

    async def _send(self, frame: Frame, *, last: bool = False) -> None:
        if self.finished:  # moved or cancelled meanwhile: nothing more goes out
            return
        data = encode(frame)  # first: a frame that cannot be encoded changes nothing
        self.finished = last
        self.seq += 1
        self.last_sent = time.monotonic()
        await self._publish(data)

    async def head(
        self, status: int, headers: list[tuple[str, str]], body: bytes, *, end: bool
    ) -> None:
        if not self.still_owner():
            await self.moved()
            return
        first, rest = body[:MAX_CHUNK], body[MAX_CHUNK:]
        self.head_sent = True
        last = end and not rest
        await self._send(Head(self.seq, self.node, status, headers, first, last), last=last)
        if rest:
            await self.body(rest, end=end)

    async def body(self, data: bytes, *, end: bool) -> None:
        for start in range(0, len(data), MAX_CHUNK):
            piece = data[start : start + MAX_CHUNK]
            if end and start + MAX_CHUNK >= len(data):
                await self.end(piece)
                return
            await self._send(Chunk(self.seq, piece))
        if end:
            await self.end(b"")

    async def end(self, data: bytes) -> None:
        await self._send(End(self.seq, data), last=True)

    async def alive(self) -> None:
        await self._send(Alive(self.seq, self.node))

    async def moved(self) -> None:
        await self._send(Moved(self.seq, self.node), last=True)

    async def failed(self, message: str) -> None:
        await self._send(Failed(self.seq, message), last=True)


@final
class FrameWriter(AbstractStreamWriter):
    """Where a replayed request's response goes: frames on the ingress's reply subject.

    The head waits for the first body bytes (one message for a whole JSON answer), or for
    ``flush_head`` (the keep-alive timer) when a streamed answer is slow to start.
    """

    def __init__(self, sink: FrameSink) -> None:
        self.sink = sink
        self._head: tuple[int, list[tuple[str, str]]] | None = None
        self._lock = asyncio.Lock()  # the keep-alive timer and the handler both send

    async def write_headers(self, status_line: str, headers: CIMultiDict[str]) -> None:
        status = int(status_line.split(" ", 2)[1])
        kept = [(str(k), v) for k, v in headers.items() if k.lower() not in _HOP_BY_HOP]
        self._head = (status, kept)

    async def flush_head(self) -> None:
        """Send a head still held back (a stream that has written nothing yet)."""
        async with self._lock:
            await self._flush(b"", end=False)

    async def _flush(self, data: bytes, *, end: bool) -> bool:
        if self._head is None:
            return False
        status, headers = self._head
        self._head = None
        await self.sink.head(status, headers, data, end=end)
        return True

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        data = bytes(chunk)
        self.buffer_size += len(data)
        self.output_size += len(data)
        async with self._lock:
            if not await self._flush(data, end=False) and data:
                await self.sink.body(data, end=False)

    async def write_eof(self, chunk: bytes = b"") -> None:
        data = bytes(chunk)
        self.output_size += len(data)
        async with self._lock:
            if self.sink.finished:
                return
            if not await self._flush(data, end=True):
                await self.sink.body(data, end=True)

    async def drain(self) -> None:
        return None

    def enable_compression(self, encoding: str = "deflate", strategy: int | None = None) -> None:
        return None  # the ingress's server compresses for its own client, if at all

    def enable_chunking(self) -> None:
        return None  # framing is per hop


@final
class _Peer:
    """The connection a replayed request came in on, as far as a request looks at it."""

    ssl_context = None
    peername = None
    sockname = None
    transport = None
    max_field_size = 8190
    max_headers = 128
    max_line_length = 8190


def _request(app: web.Application, tunnelled: TunnelRequest, writer: FrameWriter) -> web.Request:
    loop = asyncio.get_running_loop()
    headers = CIMultiDictProxy(CIMultiDict(tunnelled.headers))
    if tunnelled.body:
        headers = CIMultiDictProxy(
            CIMultiDict([*tunnelled.headers, ("Content-Length", str(len(tunnelled.body)))])
        )
    message = RawRequestMessage(
        tunnelled.method,
        tunnelled.target,
        HttpVersion11,
        headers,
        tuple((k.encode(), v.encode()) for k, v in headers.items()),
        False,  # should_close
        None,  # compression
        False,  # upgrade
        False,  # chunked
        URL(tunnelled.target),
    )
    size = max(len(tunnelled.body), 1 << 16)
    payload = StreamReader(BaseProtocol(loop), size, loop=loop)
    if tunnelled.body:
        payload.feed_data(tunnelled.body)
    payload.feed_eof()
    task = asyncio.current_task()
    assert task is not None  # we run in the replay's own task
    return web.Request(
        message,
        payload,
        cast(Any, _Peer()),
        writer,
        cast(Any, task),
        loop,
        client_max_size=app._client_max_size,  # the app's own bound
        state={REPLAYED: tunnelled.sender},
        remote=tunnelled.remote,
    )


async def replay(app: web.Application, tunnelled: TunnelRequest, writer: FrameWriter) -> None:
    """Answer ``tunnelled`` with ``app`` as its server would, writing through ``writer``."""
    request = _request(app, tunnelled, writer)
    try:
        response = await app._handle(request)  # aiohttp's entry point: see above
    except web.HTTPException as exc:  # raised rather than returned: it is a response too
        response = exc
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()


async def keep_alive(sink: FrameSink, writer: FrameWriter, every: float) -> None:
    """Tell the ingress the request is being worked on, at least every ``every`` seconds."""
    while not sink.finished:
        await asyncio.sleep(max(0.0, sink.last_sent + every - time.monotonic()))
        if sink.finished or time.monotonic() - sink.last_sent < every:
            continue
        await writer.flush_head()
        if time.monotonic() - sink.last_sent >= every and not sink.finished:
            await sink.alive()
