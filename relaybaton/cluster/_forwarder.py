"""Ingress on every node: a request about a conversation another node owns is answered there.

``ClusterForwarder`` is what the HTTP edge asks about every request that names a
conversation or an approval (it fits the service's ``RequestForwarder`` protocol without
importing it). When this node holds the conversation's partition, or the request was
itself forwarded here, it answers None and the edge serves the request locally. Otherwise
it sends the request through the tunnel to the partition's owner and relays the answer
frame by frame: the head when it comes, then each chunk as it comes, so event streams and
streamed completions flow.

While a partition has no owner (no responders on its subject, or an owner that says it has
moved, or is silent past ``frame_timeout``) the request is asked again with backoff, for up
to the lease TTL plus a second from when the owner was last heard of (the time a lost
node's partitions take to find a new owner); then the answer is 503 with ``Retry-After``.
A native message without an id gets one here (``Idempotency-Key``), so that asking again
never makes a second message of it.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol, final

import nats.errors
import structlog
from aiohttp import web
from multidict import CIMultiDict

from relaybaton.cluster._partitions import Ownership, partition_of
from relaybaton.cluster._replay import REPLAYED
from relaybaton.cluster._tunnel import NoResponders, TunnelCall, TunnelClient
from relaybaton.cluster._tunnel_wire import (
    ALIVE_EVERY,
    FORWARDED_HEADERS,
    Alive,
    Chunk,
    End,
    Failed,
    Head,
    Moved,
    TunnelRequest,
)
from relaybaton.errors import ApiError
from relaybaton.runtime import Store
from relaybaton.runtime._message_limits import new_message_id

__all__ = ["ApprovalLocator", "ClusterForwarder", "approvals_in"]

_log = structlog.get_logger("relaybaton.cluster")

ApprovalLocator = Callable[[str], Awaitable[str | None]]
"""The conversation an approval belongs to (None if unknown), from the shared store."""

_CONVERSATION_HEADER: Final = "X-Relaybaton-Conversation-Id"
_NATIVE_MESSAGES: Final = "/v1/conversations/{conversation_id}/messages"
_FIRST_BACKOFF: Final = 0.05
_MAX_BACKOFF: Final = 0.5


class _Destination(Protocol):
    """What the edge says a request names (the service's ``Destination``)."""

    @property
    def conversation_id(self) -> str | None: ...

    @property
    def approval_id(self) -> str | None: ...

    @property
    def body(self) -> bytes: ...


def approvals_in(store: Store) -> ApprovalLocator:
    """Find an approval's conversation in ``store``, decided or not (the owner says which)."""

    async def locate(approval_id: str) -> str | None:
        row = await store.approval(approval_id)
        return row.conversation_id if row is not None else None

    return locate


@dataclass(frozen=True, slots=True)
class _Retry:
    """Ask again: nobody answered for the partition, or its owner moved on. ``since``:
    when the owner was last heard of (the retries' window starts there)."""

    since: float


@final
class ClusterForwarder:
    """Sends the requests of partitions held elsewhere to their owners; see the module."""

    def __init__(
        self,
        tunnel: TunnelClient,
        ownership: Ownership,
        *,
        lease_ttl: float,
        locate_approval: ApprovalLocator | None = None,
        frame_timeout: float = 3 * ALIVE_EVERY,
    ) -> None:
        self.tunnel = tunnel
        self.ownership = ownership
        self.lease_ttl = lease_ttl
        self.locate_approval = locate_approval
        self.frame_timeout = frame_timeout

    # --- which node answers ------------------------------------------------------------------

    def _held(self, conversation_id: str) -> tuple[int, bool]:
        partition = partition_of(conversation_id, self.ownership.partitions)
        return partition, self.ownership.generation(partition) is not None

    def new_conversation_id(self) -> str:
        """A fresh ``chat-…`` id in a partition this node holds (any id if it holds none)."""
        ownership = self.ownership
        if not any(ownership.generation(p) is not None for p in range(ownership.partitions)):
            return f"chat-{secrets.token_hex(8)}"
        while True:  # a try lands on a held partition with odds held / partitions
            candidate = f"chat-{secrets.token_hex(8)}"
            if self._held(candidate)[1]:
                return candidate

    async def forward(
        self, request: web.Request, destination: _Destination
    ) -> web.StreamResponse | None:
        """The owner's answer to ``request``, or None when this node answers it."""
        if REPLAYED in request:
            return None  # forwarded here: this node answers, or says it moved
        ownership = self.ownership
        conversation_id = destination.conversation_id
        extra: list[tuple[str, str]] = []
        if destination.approval_id is not None:
            if self.locate_approval is None:
                return None
            conversation_id = await self.locate_approval(destination.approval_id)
            if conversation_id is None:
                return None  # unknown: the local handler says so
        elif conversation_id is None:  # a chat that starts a conversation
            if any(ownership.generation(p) is not None for p in range(ownership.partitions)):
                return None  # started here, under an id of ours (new_conversation_id)
            conversation_id = f"chat-{secrets.token_hex(8)}"
            extra.append((_CONVERSATION_HEADER, conversation_id))
        partition, held = self._held(conversation_id)
        if held:
            return None
        headers = [(k, v) for k in FORWARDED_HEADERS for v in request.headers.getall(k, [])]
        resource = request.match_info.route.resource
        if (
            resource is not None
            and resource.canonical == _NATIVE_MESSAGES
            and "Idempotency-Key" not in request.headers
        ):
            extra.append(("Idempotency-Key", new_message_id()))
        tunnelled = TunnelRequest(
            partition=partition,
            method=request.method,
            target=str(request.rel_url),
            headers=headers + extra,
            body=destination.body,
            remote=request.remote,
            sender=ownership.node_id,
        )
        return await self._relay(request, tunnelled)

    # --- asking the owner -------------------------------------------------------------------

    async def _relay(self, request: web.Request, tunnelled: TunnelRequest) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        deadline: float | None = None  # set by the first failure: TTL + 1 s from then
        backoff = _FIRST_BACKOFF
        while True:
            try:
                async with self.tunnel.call(tunnelled) as (reply, call):
                    answer = await self._answer(request, reply, call, deadline)
            except nats.errors.MaxPayloadError as exc:
                raise ApiError(
                    413,
                    f"request of {len(tunnelled.body)} bytes is too large to forward to the "
                    "node that owns its conversation (NATS max_payload); raise max_payload "
                    "on the NATS server or send a smaller body",
                    code="too_large_to_forward",
                ) from exc
            except nats.errors.Error:  # disconnected, reconnecting: ask again
                _log.exception("forward_publish_failed", partition=tunnelled.partition)
                answer = _Retry(loop.time())
            if not isinstance(answer, _Retry):
                return answer
            if deadline is None:
                deadline = answer.since + self.lease_ttl + 1.0
            remaining = deadline - loop.time()
            if remaining <= 0:
                owner = self.ownership.owner_of(tunnelled.partition)
                holder = f"node {owner!r}" if owner else "no node"
                raise ApiError(
                    503,
                    f"the node that owns this conversation (partition {tunnelled.partition}, "
                    f"held by {holder} as last seen) did not answer within "
                    f"{self.lease_ttl + 1.0:g} s; it is moving to another node: retry shortly",
                    code="owner_unavailable",
                    headers={"Retry-After": str(max(1, math.ceil(self.lease_ttl / 2)))},
                )
            await asyncio.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _answer(  # one frame kind per branch
        self, request: web.Request, reply: str, call: TunnelCall, deadline: float | None
    ) -> web.StreamResponse | _Retry:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        expected = 0
        response: web.StreamResponse | None = None
        while True:
            # A live owner says something at least every ALIVE_EVERY; once retrying, the
            # wait for its first word ends with the retries' deadline too.
            timeout = self.frame_timeout
            if expected == 0 and deadline is not None:
                timeout = max(0.05, min(timeout, deadline - loop.time()))
            try:
                item = await asyncio.wait_for(call.frames.get(), timeout)
            except TimeoutError:
                await self.tunnel.cancel(reply)
                if response is None:
                    return _Retry(heard)  # an owner that stopped answering (paused, cut off)
                return self._abort(request, response, "the owning node went silent")
            if isinstance(item, NoResponders):
                if response is None:
                    return _Retry(loop.time())
                continue
            heard = loop.time()
            if call.overflowed or item.seq != expected:
                await self.tunnel.cancel(reply)
                problem = "a frame was lost" if not call.overflowed else "the client reads slower"
                if response is None:
                    raise ApiError(
                        502, f"the owning node's answer broke off: {problem}", code="owner_failed"
                    )
                return self._abort(request, response, problem)
            expected += 1
            if isinstance(item, Alive):
                if _client_gone(request):
                    await self.tunnel.cancel(reply)
                    return response or web.Response(status=499)
            elif isinstance(item, Moved):
                if response is None:
                    return _Retry(heard)
                return self._abort(request, response, "the owning node lost the partition")
            elif isinstance(item, Failed):
                if response is None:
                    raise ApiError(
                        502,
                        f"the owning node could not answer: {item.message}",
                        code="owner_failed",
                    )
                return self._abort(request, response, item.message)
            elif isinstance(item, Head):
                headers = CIMultiDict(item.headers)
                if item.end:
                    return web.Response(status=item.status, headers=headers, body=item.body)
                response = web.StreamResponse(status=item.status, headers=headers)
                if not await self._write(request, response, reply, item.body, prepare=True):
                    return response
            elif isinstance(item, Chunk | End) and response is not None:
                if not await self._write(request, response, reply, item.data, prepare=False):
                    return response
                if isinstance(item, End):
                    await response.write_eof()
                    return response

    async def _write(
        self,
        request: web.Request,
        response: web.StreamResponse,
        reply: str,
        data: bytes,
        *,
        prepare: bool,
    ) -> bool:
        """Pass ``data`` on to the client; False (and the owner told to stop) if it left."""
        try:
            if prepare:
                await response.prepare(request)
            if data:
                await response.write(data)
        except ConnectionError as exc:  # the client went away; so does the owner's work
            _log.debug("forwarded_client_left", target=str(request.rel_url), exc_info=exc)
            await self.tunnel.cancel(reply)
            return False
        return True

    def _abort(
        self, request: web.Request, response: web.StreamResponse, why: str
    ) -> web.StreamResponse:
        """End a stream whose head is out by dropping the connection: a client sees it
        cut off (an event stream reconnects with ``Last-Event-ID``), never a false end."""
        _log.warning("forwarded_stream_broken", target=str(request.rel_url), reason=why)
        transport = request.transport
        if transport is not None:
            transport.close()
        return response


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
