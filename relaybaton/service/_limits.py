"""Guarding the edge: body size, JSON nesting, and per-token rate and concurrency limits.

Every check answers a clear ``ApiError`` (413, 400 or 429 with ``Retry-After``) before any
work is done, so an abusive request costs a bounded amount of memory and time and never
reaches the runtime.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import final

import msgspec
from aiohttp import web

from relaybaton.runtime._message_limits import MAX_MESSAGE_BYTES, MAX_TEXT_CHARS
from relaybaton.service._errors import ApiError

__all__ = ["BODY_READ", "ServiceLimits", "TokenLimiter", "check_depth", "read_body"]

BODY_READ = web.RequestKey("relaybaton.body", bytes)
"""The request-state key of a body already read at the edge (to see whether to forward it)."""


class ServiceLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The bounds the service enforces; every one has a safe default.

    Attributes:
        max_body_bytes: request bodies larger than this get 413.
        max_messages: messages in one OpenAI-style request; more get 400.
        max_text_chars: characters in one message's text; more get 400.
        max_depth: JSON nesting depth of a request body; deeper gets 400.
        rate_per_s: requests per second per token (a token bucket), then 429.
        burst: the bucket's size.
        max_concurrent: requests in progress per token, then 429.
        max_pending_per_conversation: user messages queued behind a conversation's active
            turn; past it the service answers 503 instead of queueing without bound.
        max_turns_in_flight: accepted turns not yet finished, over all conversations; past
            it, 503.
        wait_timeout_s: how long a waiting request holds for its turn before answering 202
            (the turn keeps running).
        keepalive_s: seconds between keep-alive comments on an idle event stream.
        replay_events: events kept per conversation for ``Last-Event-ID`` replay.
        max_replay_conversations: conversations whose recent events are kept at once.
        drain_timeout_s: on shutdown, how long turns in flight get to finish.
    """

    max_body_bytes: int = MAX_MESSAGE_BYTES
    max_messages: int = 512
    max_text_chars: int = MAX_TEXT_CHARS
    max_depth: int = 32
    rate_per_s: float = 200.0
    burst: int = 400
    max_concurrent: int = 2_000
    max_pending_per_conversation: int = 64
    max_turns_in_flight: int = 20_000
    wait_timeout_s: float = 300.0
    keepalive_s: float = 15.0
    replay_events: int = 512
    max_replay_conversations: int = 10_000
    drain_timeout_s: float = 30.0


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read the request body, refusing with 413 as soon as it passes ``limit`` bytes.

    The declared ``Content-Length`` is checked first, so an honest oversize request is
    refused without reading it; a chunked one is read only up to the limit. A body read
    once (the edge reads it to see whether to forward the request) is read from memory.
    """
    # ``len`` first: on a request with nothing stored (the common case), ``get`` would
    # raise and catch a KeyError inside aiohttp's mapping.
    kept: bytes | None = request.get(BODY_READ) if len(request) else None
    if kept is not None:
        return kept
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(declared, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    request[BODY_READ] = body
    return body


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        f"request body is too large: more than {limit} bytes (got {size}); "
        "send less, or raise the server's --max-body-bytes",
        code="body_too_large",
    )


# A JSON string, with its escapes: removed before counting brackets, so "[[[" in a text
# does not count as nesting.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def check_depth(body: bytes, limit: int) -> None:
    """Refuse, with 400, a JSON body nested deeper than ``limit`` arrays and objects.

    Runs before decoding, in time linear in the body (the regular expression and the
    translation run in C), so a body of nothing but brackets cannot exhaust the stack.
    """
    if body.count(b"{") + body.count(b"[") <= limit:  # no deeper than its openings: most
        return
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if len(brackets) <= limit:
        return
    depth = max(accumulate(_STEP[b] for b in brackets), default=0)
    if depth > limit:
        raise ApiError(
            400,
            f"request body is nested {depth} levels deep; at most {limit} are allowed",
            code="too_deep",
        )


@final
@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    active: int = 0


@final
class TokenLimiter:
    """Per-token request rate (a token bucket) and concurrency, refused with 429.

    ``enter`` takes a unit from the caller's bucket and a concurrency slot; ``leave`` gives
    the slot back. Both are synchronous, so check and update are atomic on the loop.
    """

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: int,
        max_concurrent: int,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self.max_concurrent = max_concurrent
        self._now = now
        self._buckets: dict[str, _Bucket] = {}

    def enter(self, principal: str) -> None:
        """Admit one request of ``principal`` or raise a 429 ``ApiError``."""
        now = self._now()
        bucket = self._buckets.get(principal)
        if bucket is None:
            bucket = self._buckets[principal] = _Bucket(tokens=float(self.burst), updated=now)
        else:
            refill = (now - bucket.updated) * self.rate_per_s
            bucket.tokens = min(float(self.burst), bucket.tokens + refill)
            bucket.updated = now
        if bucket.active >= self.max_concurrent:
            raise ApiError(
                429,
                f"too many requests in progress for this token (limit {self.max_concurrent}); "
                "wait for some to finish",
                code="concurrency_limit",
                headers={"Retry-After": "1"},
            )
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) / self.rate_per_s) if self.rate_per_s else 60
            raise ApiError(
                429,
                f"rate limit of {self.rate_per_s:g} requests per second for this token "
                f"exceeded; retry after {wait} s",
                code="rate_limit",
                headers={"Retry-After": str(max(1, wait))},
            )
        bucket.tokens -= 1.0
        bucket.active += 1

    def leave(self, principal: str) -> None:
        """Give back the concurrency slot ``enter`` took."""
        bucket = self._buckets.get(principal)
        if bucket is not None and bucket.active > 0:
            bucket.active -= 1
