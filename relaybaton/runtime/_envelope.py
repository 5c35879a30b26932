"""The envelope: routing metadata around a message, kept apart from the payload."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

import msgspec

__all__ = ["Envelope"]

M = TypeVar("M")


class Envelope(msgspec.Struct, Generic[M], frozen=True, kw_only=True, gc=False):
    """A message on its way to one actor.

    ``reply`` is the in-process return address of an ``ask`` (None for ``tell``); it is
    never encoded: at a process boundary a transport replaces it with an address.
    ``epoch`` is the fencing token the sender acted under (0 when the message is not about
    a conversation).
    """

    message: M
    sender: str | None = None
    reply: asyncio.Future[object] | None = None
    conversation_id: str | None = None
    epoch: int = 0
    trace_id: str | None = None
