"""HTTP over NATS between nodes: the owner's side (``TunnelServer``) and the ingress's
(``TunnelClient``). The frames are in ``_tunnel_wire.py``; replaying a request into the
owner's application is ``_replay.py``.

The owner of a partition listens on its subject while, and only while, it holds it: it
subscribes when the partition is gained and unsubscribes when it is lost, before the lease
is released (the ``Ownership`` reports a loss before anyone else acts for the partition).
A request that arrives anyway (it was in flight) is answered ``Moved``; a request still
being answered when its partition is lost is answered ``Moved`` if nothing of it was sent
yet (the ingress asks the new owner: the request carries its message id, so the journal
deduplicates it), ``Failed`` otherwise, and its handler is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import final

import structlog
from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from relaybaton.cluster._partitions import Ownership
from relaybaton.cluster._replay import FrameSink, FrameWriter, keep_alive, replay
from relaybaton.cluster._tunnel_wire import (
    ALIVE_EVERY,
    Frame,
    Moved,
    TunnelRequest,
    cancel_subject,
    decode_frame,
    decode_request,
    encode,
    rpc_subject,
)

__all__ = ["NoResponders", "TunnelCall", "TunnelClient", "TunnelServer"]

_log = structlog.get_logger("relaybaton.cluster")


@dataclass(slots=True, eq=False)
class _Serving:
    partition: int
    sink: FrameSink
    task: asyncio.Task[None] | None = None


@final
class TunnelServer:
    """Answers the requests for the partitions this node holds with its own application."""

    def __init__(
        self,
        nc: NatsClient,
        app: web.Application,
        ownership: Ownership,
        *,
        prefix: str,
        alive_every: float = ALIVE_EVERY,
    ) -> None:
        self.nc = nc
        self.app = app
        self.ownership = ownership
        self.prefix = prefix
        self.alive_every = alive_every
        self._subscriptions: dict[int, Subscription] = {}
        self._serving: dict[str, _Serving] = {}  # by reply subject
        self._cancels: Subscription | None = None
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        """Listen for cancels, and on the subject of every partition held (now and later)."""
        self._cancels = await self.nc.subscribe(cancel_subject(self.prefix), cb=self._on_cancel)
        self.ownership.listen(self._on_ownership)

    async def close(self) -> None:
        """Stop listening and stop every request still being answered; idempotent."""
        if self._closed:
            return
        self._closed = True
        for partition in list(self._subscriptions):
            await self._lose(partition)
        if self._cancels is not None:
            await self._cancels.unsubscribe()
            self._cancels = None
        for serving in list(self._serving.values()):
            if serving.task is not None:
                serving.task.cancel()

    async def idle(self) -> None:
        """Wait until no request is being answered here."""
        await self._idle.wait()

    @property
    def listening(self) -> frozenset[int]:
        """The partitions whose subject this node listens on."""
        return frozenset(self._subscriptions)

    async def _on_ownership(self, partition: int, generation: int | None) -> None:
        if generation is None:
            await self._lose(partition)
        elif partition not in self._subscriptions and not self._closed:
            subject = rpc_subject(self.prefix, partition)
            self._subscriptions[partition] = await self.nc.subscribe(subject, cb=self._on_request)
            await self.nc.flush()  # the server knows the subscription before we say we serve

    async def _lose(self, partition: int) -> None:
        subscription = self._subscriptions.pop(partition, None)
        if subscription is not None:
            await subscription.unsubscribe()
        for serving in [s for s in self._serving.values() if s.partition == partition]:
            # Nothing it would still say may reach a client: the new owner answers instead.
            if serving.sink.head_sent:
                await serving.sink.failed(f"node {serving.sink.node} lost partition {partition}")
            else:
                await serving.sink.moved()
            if serving.task is not None:
                serving.task.cancel()

    async def _on_request(self, msg: Msg) -> None:
        reply = msg.reply
        if not reply:
            return
        try:
            tunnelled = decode_request(msg.data)
        except ValueError:  # msgspec's DecodeError is one
            _log.exception("tunnel_request_undecodable", subject=msg.subject)
            return
        node = self.ownership.node_id
        partition = tunnelled.partition
        generation = self.ownership.generation(partition)
        if generation is None:
            await self.nc.publish(reply, encode(Moved(0, node)))
            return

        async def publish(data: bytes) -> None:
            await self.nc.publish(reply, data)

        def still_owner() -> bool:
            return self.ownership.generation(partition) == generation

        serving = _Serving(partition, FrameSink(publish, node, still_owner))
        self._serving[reply] = serving
        self._idle.clear()
        serving.task = asyncio.create_task(self._serve(reply, serving, tunnelled))

    async def _serve(self, reply: str, serving: _Serving, tunnelled: TunnelRequest) -> None:
        sink = serving.sink
        writer = FrameWriter(sink)
        alive = asyncio.create_task(keep_alive(sink, writer, self.alive_every))
        try:
            await replay(self.app, tunnelled, writer)
        except asyncio.CancelledError:
            pass  # only this server cancels it (the ingress left, the partition was lost)
        except Exception as exc:
            _log.exception("tunnel_replay_failed", target=tunnelled.target, error=repr(exc))
            try:
                await sink.failed("the owning node failed while answering; it logged why")
            except Exception as unsent:  # NATS itself is gone: the ingress times out
                _log.exception("tunnel_failure_unsent", error=repr(unsent))
        finally:
            alive.cancel()
            self._serving.pop(reply, None)
            if not self._serving:
                self._idle.set()

    async def _on_cancel(self, msg: Msg) -> None:
        serving = self._serving.get(msg.data.decode(errors="replace"))
        if serving is not None and serving.task is not None:
            serving.sink.finished = True  # the ingress hears nothing more
            serving.task.cancel()


@final
class NoResponders:
    """The server's word that nobody listens on the partition's subject (it is moving, or
    its owner is gone)."""


@dataclass(slots=True, eq=False)
class TunnelCall:
    frames: asyncio.Queue[Frame | NoResponders] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1024)
    )
    overflowed: bool = False


@final
class TunnelClient:
    """Sends requests to partitions' owners and reads their answers, frame by frame.

    One wildcard subscription on an inbox of this connection carries every answer; each
    request has its own reply subject under it, and its frames wait in a bounded queue
    (an answer the client reads too slowly to keep up with is dropped, not buffered
    without bound).
    """

    def __init__(self, nc: NatsClient, *, prefix: str) -> None:
        self.nc = nc
        self.prefix = prefix
        self._inbox = ""
        self._calls: dict[str, TunnelCall] = {}
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._inbox = self.nc.new_inbox()
        self._subscription = await self.nc.subscribe(f"{self._inbox}.*", cb=self._on_frame)

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()

    async def _on_frame(self, msg: Msg) -> None:
        call = self._calls.get(msg.subject)
        if call is None:
            return  # a late frame of a request given up on
        item: Frame | NoResponders
        if not msg.data and msg.headers and msg.headers.get("Status") == "503":
            item = NoResponders()
        else:
            try:
                item = decode_frame(msg.data)
            except ValueError:
                _log.exception("tunnel_frame_undecodable", subject=msg.subject)
                return
        try:
            call.frames.put_nowait(item)
        except asyncio.QueueFull:
            call.overflowed = True

    @contextlib.asynccontextmanager
    async def call(self, tunnelled: TunnelRequest) -> AsyncIterator[tuple[str, TunnelCall]]:
        """Publish ``tunnelled``; yield its reply subject and where its frames arrive."""
        reply = f"{self._inbox}.{secrets.token_hex(8)}"
        call = TunnelCall()
        self._calls[reply] = call
        try:
            subject = rpc_subject(self.prefix, tunnelled.partition)
            await self.nc.publish(subject, encode(tunnelled), reply=reply)
            yield reply, call
        finally:
            del self._calls[reply]

    async def cancel(self, reply: str) -> None:
        """Tell whoever answers ``reply`` to stop."""
        await self.nc.publish(cancel_subject(self.prefix), reply.encode())
