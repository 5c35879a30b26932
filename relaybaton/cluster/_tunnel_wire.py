"""What crosses NATS when one node answers an HTTP request for another.

The ingress publishes a ``TunnelRequest`` on ``<prefix>.rpc.<partition>`` with a reply
subject of its own; only the node holding the partition listens there. The owner answers on
the reply subject with frames, in order, each numbered so that a lost one is noticed:

- ``Head``: the status and headers, with the first body bytes; ``end`` when that is all
  (a plain JSON answer is one message);
- ``Chunk``: more body bytes, at most ``MAX_CHUNK`` each (a streamed answer, SSE);
- ``End``: the last bytes;
- ``Alive``: nothing to send yet, still working (at least every ``ALIVE_EVERY`` seconds),
  so that the ingress can tell a slow answer from a dead owner;
- ``Moved``: this node does not hold the partition (any more): ask again;
- ``Failed``: the answer broke after its head was sent; the ingress drops the connection.

A cancel (the client went away) is the reply subject, published on
``<prefix>.rpc.cancel``: every node listens, the one serving that request stops it.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = [
    "ALIVE_EVERY",
    "FORWARDED_HEADERS",
    "MAX_CHUNK",
    "Alive",
    "Chunk",
    "End",
    "Failed",
    "Frame",
    "Head",
    "Moved",
    "TunnelRequest",
    "cancel_subject",
    "decode_frame",
    "decode_request",
    "encode",
    "rpc_subject",
]

MAX_CHUNK: Final = 64 * 1024
"""Bytes per frame: far below NATS's default 1 MiB payload limit, small enough to interleave."""

ALIVE_EVERY: Final = 1.0
"""Seconds an owner stays silent at most while it works on a request."""

# What the owner needs of the client's request to answer it as the ingress would have.
FORWARDED_HEADERS: Final = (
    "Accept",
    "Authorization",
    "Content-Type",
    "Cookie",
    "Idempotency-Key",
    "Last-Event-ID",
    "X-Relaybaton-Conversation-Id",
)


def rpc_subject(prefix: str, partition: int) -> str:
    """The subject the owner of ``partition`` answers requests on."""
    return f"{prefix}.rpc.{partition}"


def cancel_subject(prefix: str) -> str:
    """The subject on which an ingress stops a request it no longer waits for."""
    return f"{prefix}.rpc.cancel"


class TunnelRequest(msgspec.Struct, frozen=True, array_like=True):
    """An HTTP request, as the ingress received it."""

    partition: int
    method: str
    target: str  # the path and query
    headers: list[tuple[str, str]]
    body: bytes
    remote: str | None  # the client's address, which loopback-only auth looks at
    sender: str  # the ingress node, for the logs


class Head(msgspec.Struct, frozen=True, array_like=True, tag="h"):
    seq: int
    node: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    end: bool = False


class Chunk(msgspec.Struct, frozen=True, array_like=True, tag="c"):
    seq: int
    data: bytes


class End(msgspec.Struct, frozen=True, array_like=True, tag="e"):
    seq: int
    data: bytes = b""


class Alive(msgspec.Struct, frozen=True, array_like=True, tag="a"):
    seq: int
    node: str


class Moved(msgspec.Struct, frozen=True, array_like=True, tag="m"):
    seq: int
    node: str


class Failed(msgspec.Struct, frozen=True, array_like=True, tag="f"):
    seq: int
    message: str


Frame = Head | Chunk | End | Alive | Moved | Failed

_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(TunnelRequest)
_frame_decoder = msgspec.msgpack.Decoder(Frame)


def encode(message: TunnelRequest | Frame) -> bytes:
    return _encoder.encode(message)


def decode_request(data: bytes) -> TunnelRequest:
    return _request_decoder.decode(data)


def decode_frame(data: bytes) -> Frame:
    return _frame_decoder.decode(data)
