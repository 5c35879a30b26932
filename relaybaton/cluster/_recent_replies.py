"""The replies a node published lately, kept to publish again once NATS is back.

Replies go over core NATS, which delivers a message to whoever is subscribed when the server
routes it. A NATS restart loses replies in two windows:

- those written into the old connection in the moments before it broke, which the client
  counted as sent (a silently dead connection is noticed only when pings go unanswered);
- those the node flushes on reconnecting, before the producer's own client has reconnected
  and subscribed its inbox again (nats-py and the Go client wait 2 s between attempts by
  default; a node waits a quarter of a second).

So a reply is kept for ``suspect_s`` after it is published, and for as long as the
connection is down; once the connection is back, and ``resend_after_s`` later (time for the
producers to be back too), every reply published from ``suspect_s`` before the disconnect
until then is published again. Replies are at least once and keyed by ``message_id``, so a
producer that got the first copy drops the second.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import final

__all__ = ["RecentReplies"]


@final
class RecentReplies:
    """Replies published in the last ``suspect_s`` seconds, and all of them while down."""

    def __init__(
        self,
        *,
        suspect_s: float,
        max_kept: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.suspect_s = suspect_s
        self.max_kept = max_kept
        self.clock = clock
        self._kept: deque[tuple[float, str, bytes]] = deque()
        self._down_since: float | None = None
        #: Replies dropped from the memory by ``max_kept`` while they might still be owed.
        self.overflowed = 0

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def down(self) -> bool:
        """Whether a disconnect was seen and its replies not yet published again."""
        return self._down_since is not None

    def record(self, subject: str, payload: bytes) -> None:
        """A reply was just handed to the client."""
        now = self.clock()
        kept = self._kept
        kept.append((now, subject, payload))
        if self._down_since is None:
            self._forget_before(now - self.suspect_s)
        while len(kept) > self.max_kept:
            if self._down_since is not None and kept[0][0] >= self._down_since - self.suspect_s:
                self.overflowed += 1
            kept.popleft()

    def disconnected(self) -> None:
        """The connection broke: keep every reply from ``suspect_s`` before now on."""
        if self._down_since is None:
            self._down_since = self.clock()

    def take_owed(self) -> list[tuple[str, bytes]]:
        """The replies to publish again (since ``suspect_s`` before the disconnect), once.

        Empty when no disconnect was seen. Afterwards only ``suspect_s`` is kept again.
        """
        if self._down_since is None:
            return []
        since = self._down_since - self.suspect_s
        self._down_since = None
        owed = [(subject, payload) for t, subject, payload in self._kept if t >= since]
        self._forget_before(self.clock() - self.suspect_s)
        return owed

    def _forget_before(self, horizon: float) -> None:
        kept = self._kept
        while kept and kept[0][0] < horizon:
            kept.popleft()
