"""What a node sees of a KV bucket: each key's value, revision and when it was last seen.

A watcher on the whole bucket keeps the view current: puts and explicit deletes arrive as
they happen. NATS 2.9 does not announce keys that its bucket TTL expires, so a key counts
as live only while it was written within the TTL by the watcher's clock: every holder
rewrites its key each heartbeat, so a key that stopped being rewritten is gone for us too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, final

import structlog
from nats.js.kv import KeyValue

__all__ = ["BucketView", "Seen"]

_log = structlog.get_logger("relaybaton.cluster")

_DELETES = frozenset({"DEL", "PURGE"})


@dataclass(frozen=True, slots=True)
class Seen:
    """A key's value as last written, its revision, and when this node saw it (monotonic)."""

    value: str
    revision: int
    at: float


@final
class BucketView:
    """The live keys of one KV bucket, as far as this node knows."""

    def __init__(
        self,
        kv: KeyValue,
        *,
        ttl: float,
        on_change: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kv = kv
        self._ttl = ttl
        self._on_change = on_change
        self._clock = clock
        self._entries: dict[str, Seen] = {}
        self._watcher: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Watch the bucket; return once its current keys are in the view."""
        watcher = await self._kv.watchall()
        self._watcher = watcher
        while (entry := await watcher.updates(timeout=10.0)) is not None:  # type: ignore[no-untyped-call]
            self._apply(entry)
        self._task = asyncio.get_running_loop().create_task(self._follow(watcher))

    async def _follow(self, watcher: Any) -> None:
        try:
            async for entry in watcher:
                if entry is not None:
                    self._apply(entry)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The view then ages out: leases are still acquired by compare-and-set, so a
            # stale view slows placement down but cannot make two owners.
            _log.exception("cluster_watch_failed", bucket=self._kv._name, error=repr(exc))

    def _apply(self, entry: KeyValue.Entry) -> None:
        key = entry.key
        if entry.operation in _DELETES:
            if self._entries.pop(key, None) is not None:
                self._on_change(key)
            return
        value = (entry.value or b"").decode("utf-8", "replace")
        before = self._entries.get(key)
        self._entries[key] = Seen(value, entry.revision or 0, self._clock())
        if before is None or before.value != value:
            self._on_change(key)

    def live(self) -> dict[str, Seen]:
        """The keys written within the TTL (see the module's docstring)."""
        horizon = self._clock() - self._ttl
        return {k: s for k, s in self._entries.items() if s.at > horizon}

    def get(self, key: str) -> Seen | None:
        """The key's live entry, or None."""
        seen = self._entries.get(key)
        if seen is None or seen.at <= self._clock() - self._ttl:
            return None
        return seen

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._watcher is not None:
            try:
                await self._watcher.stop()
            except Exception as exc:  # the connection may be gone already
                _log.warning("cluster_watch_stop_failed", error=repr(exc), exc_info=exc)
            self._watcher = None
