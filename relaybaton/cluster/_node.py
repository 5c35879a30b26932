"""A cluster node: its NATS connection, its membership, its leases, and who hears of them.

Three tasks keep the node's partitions:

- the **heartbeat** (every TTL/3) announces the node in the members bucket and renews
  every lease it holds; a refused renewal is a lost partition;
- the **guard** sleeps until the first lease would run out by this node's clock and steps
  down from it then (self-fencing; see ``_leases.py``), whether or not NATS answers;
- **placement** computes the desired holder of each partition from the live members
  (``_membership.py``), releases gracefully what belongs elsewhere and acquires what is
  ours and free. It runs every heartbeat and at once when a member comes or goes or a
  lease is released, so a hand-over does not wait for the next beat.

On gaining partitions the node first raises each one's fence in the journal (so no
earlier holder can write there any more), then tells its host (the runtime, which
recovers their conversations; the partitions one placement took come as one batch) and
its listeners. On losing one it forgets it at once and tells them to stop. A graceful
release (placement, or ``leave`` at SIGTERM) stops taking new work for the partition,
lets the host finish or journal what is in flight, and deletes the lease, so the next
holder takes it over at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, Protocol, final

import nats
import nats.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue

from relaybaton.cluster._config import ClusterConfig
from relaybaton.cluster._connection import ConnectionWatch
from relaybaton.cluster._leases import Lease, LeaseKeeper, lease_key
from relaybaton.cluster._membership import Membership, assignment
from relaybaton.cluster._partitions import OwnershipListener, partition_of
from relaybaton.cluster._view import BucketView
from relaybaton.errors import ClusterUnavailableError, ConfigError, PartitionNotOwnedError

__all__ = ["ClusterNode", "Fence", "PartitionHost", "open_node"]

_log = structlog.get_logger("relaybaton.cluster")
# How long after a key's expiry by this node's clock placement runs: the server expired it
# first (this node saw the write after the server stored it), with room for its timer.
_AFTER_EXPIRY = 0.05

Fence = Callable[[int, int], Awaitable[None]]
"""Raise partition ``p``'s fence to ``generation`` in the journal (only ever upwards)."""


class PartitionHost(Protocol):
    """What acts for a partition's conversations on this node (the runtime's binding)."""

    async def gained(self, holdings: Mapping[int, int]) -> None:
        """These partitions (each with its generation) are ours, their fences raised:
        recover their work. The partitions a placement acquired come together (all of
        them at a node's start), so the host can read the journal once for the batch."""
        ...

    async def lost(self, partition: int, *, graceful: bool, within: float | None = None) -> None:
        """Stop acting for the partition. ``graceful``: finish or journal the turns in
        flight first, for up to ``within`` seconds (the host's own drain timeout when None;
        the lease is still held meanwhile); else stop at once, writing nothing more."""
        ...


@final
class ClusterNode:
    """One process of a cluster; it implements ``Ownership``. Start one with ``open_node``."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        fence: Fence | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.fence = fence
        self._clock = clock
        self.host: PartitionHost | None = None
        self._listeners: list[OwnershipListener] = []
        self._active: dict[int, int] = {}  # partition -> generation, fence raised
        self._releasing: set[int] = set()
        # Partitions being handed over: no new work, but the turns in flight still write
        # (under the lease, which is held until they end) until the lease is released.
        self._draining: dict[int, int] = {}
        self._leaving = False
        self._nc: NatsClient | None = None
        #: The connection's breaks and returns, for the parts that must act on them.
        self.connection = ConnectionWatch(unnoticed_s=config.dead_connection_notice)
        self._js: JetStreamContext | None = None
        self._keeper: LeaseKeeper | None = None
        self._membership: Membership | None = None
        self._members: BucketView | None = None
        self._leases: BucketView | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._side: set[asyncio.Task[None]] = set()
        self._placement_due = asyncio.Event()
        self._guard_wake = asyncio.Event()
        self._placing = asyncio.Lock()
        self.gains = 0
        self.losses = 0

    # --- Ownership ------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.config.node_id

    @property
    def partitions(self) -> int:
        return self.config.partitions

    def generation(self, partition: int) -> int | None:
        return self._active.get(partition)

    def owner_of(self, partition: int) -> str | None:
        if partition in self._active:
            return self.node_id
        seen = self._leases.get(lease_key(partition)) if self._leases is not None else None
        if seen is None or seen.value == self.node_id:
            return None  # ours only as a leftover key that is about to expire
        return seen.value

    def listen(self, listener: OwnershipListener) -> None:
        self._listeners.append(listener)
        for partition, generation in sorted(self._active.items()):
            self._spawn(listener(partition, generation), "replay")

    # --- what the rest of the node asks ---------------------------------------------------

    @property
    def nats(self) -> NatsClient:
        """The node's NATS connection (forwarding and producers share it)."""
        if self._nc is None:
            raise RuntimeError("the cluster node is not started: use open_node")
        return self._nc

    @property
    def jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("the cluster node is not started: use open_node")
        return self._js

    def held(self) -> dict[int, int]:
        """The partitions this node acts for now, with their generations."""
        return dict(self._active)

    def members(self) -> list[str]:
        """The live members as seen here, this node included while it has not left."""
        seen = set(self._members.live()) if self._members is not None else set()
        if not self._leaving:
            seen.add(self.node_id)
        return sorted(seen)

    def check_owner(self, conversation_id: str) -> tuple[int, int]:
        """The conversation's partition and this node's generation for it.

        Raises:
            PartitionNotOwnedError: another node (or none, while it moves) holds it.
        """
        partition = partition_of(conversation_id, self.config.partitions)
        generation = self._active.get(partition)
        if generation is None:
            raise PartitionNotOwnedError(
                conversation_id,
                partition,
                node_id=self.node_id,
                owner=self.owner_of(partition),
                retry_after=max(1.0, round(self.config.lease_ttl / 2)),
            )
        return partition, generation

    def fencing_token(self, conversation_id: str) -> tuple[int, int] | None:
        """The (partition, generation) a journal write for the conversation carries, or
        None when this node does not hold its partition (the write must be refused)."""
        partition = partition_of(conversation_id, self.config.partitions)
        generation = self._active.get(partition) or self._draining.get(partition)
        return None if generation is None else (partition, generation)

    def step_down(self, partition: int, why: str) -> None:
        """Stop acting for ``partition`` at once (the journal refused our writes there)."""
        if partition in self._active:
            self._spawn(self._lose(partition, why=why), "step_down")

    # --- start and stop -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, join the members, and take the first partitions; return once placed."""
        config = self.config
        try:
            self._nc = await nats.connect(
                config.nats,
                name=f"relaybaton {config.node_id}",
                connect_timeout=2,
                reconnect_time_wait=0.25,
                max_reconnect_attempts=-1,
                allow_reconnect=True,
                ping_interval=config.ping_interval,
                max_outstanding_pings=2,
                disconnected_cb=self.connection.disconnected,
                reconnected_cb=self.connection.reconnected,
            )
        except (nats.errors.Error, OSError) as exc:
            raise ClusterUnavailableError(
                f"cannot reach NATS at {config.nats}: {exc!r}; start nats-server with -js"
                " (JetStream) or pass the right --cluster URL"
            ) from exc
        self._js = self._nc.jetstream(timeout=max(1.0, config.heartbeat))
        leases_kv = await self._bucket(config.leases_bucket)
        members_kv = await self._bucket(config.members_bucket)
        self._keeper = LeaseKeeper(
            leases_kv,
            node_id=config.node_id,
            ttl=config.lease_ttl,
            margin=config.safety_margin,
            clock=self._clock,
        )
        self._membership = Membership(members_kv, config.node_id)
        self._leases = BucketView(
            leases_kv, ttl=config.lease_ttl, on_change=self._wake_placement, clock=self._clock
        )
        self._members = BucketView(
            members_kv, ttl=config.lease_ttl, on_change=self._wake_placement, clock=self._clock
        )
        await self._members.start()
        await self._leases.start()
        await self._membership.announce()
        await self._place()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._heartbeat()),
            loop.create_task(self._guard()),
            loop.create_task(self._placement()),
        ]
        _log.info(
            "cluster_node_started",
            node_id=config.node_id,
            nats=config.nats,
            partitions=len(self._active),
            members=self.members(),
        )

    async def _bucket(self, name: str) -> KeyValue:
        js = self.jetstream
        ttl = self.config.lease_ttl
        try:
            return await js.create_key_value(KeyValueConfig(bucket=name, ttl=ttl, history=1))
        except BadRequestError:
            kv = await js.key_value(name)  # made by another node, maybe with another TTL
            status = await kv.status()
            if status.ttl is not None and abs(status.ttl - ttl) > 1e-3:
                raise ConfigError(
                    f"the cluster's KV bucket {name!r} has a lease TTL of {status.ttl:g} s,"
                    f" this node was given {ttl:g} s: give every node the same lease_ttl_s"
                    " (or another prefix for another cluster)"
                ) from None
            return kv
        except (nats.errors.Error, TimeoutError) as exc:
            raise ClusterUnavailableError(
                f"NATS at {self.config.nats} refused the KV bucket {name!r}: {exc!r};"
                " is JetStream enabled (nats-server -js)?"
            ) from exc

    async def leave(self) -> None:
        """Hand every partition over gracefully and leave the members. Idempotent.

        The node leaves the members first, so the others' placement already counts
        without it, then releases each partition once its host has finished or journaled
        what was in flight: the others acquire each one as its key is deleted.
        """
        if self._leaving or self._membership is None:
            return
        self._leaving = True
        await self._membership.leave()
        await asyncio.gather(*(self._release(p) for p in list(self._active)))
        # Leases being released by placement finish on their own; wait for them too.
        while self._side:
            await asyncio.gather(*list(self._side), return_exceptions=True)
        _log.info("cluster_node_left", node_id=self.node_id)

    async def aclose(self) -> None:
        """Stop the tasks and close the connection (after ``leave`` for a clean exit)."""
        for task in [*self._tasks, *self._side]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._side, return_exceptions=True)
        self._tasks = []
        for view in (self._members, self._leases):
            if view is not None:
                await view.aclose()
        if self._nc is not None and not self._nc.is_closed:
            self.connection.closing = True
            with suppress(Exception):
                await self._nc.close()

    # --- the tasks ------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        keeper, membership = self._keeper, self._membership
        assert keeper is not None
        assert membership is not None
        while True:
            await asyncio.sleep(self.config.heartbeat)
            try:
                if not self._leaving:
                    await membership.announce()
                held = list(keeper.held.values())
                renewed = await asyncio.gather(*(keeper.renew(lease.partition) for lease in held))
                # Only the leases renewed in vain: one may have been acquired anew (after
                # a step-down) while its renewal was on its way.
                await asyncio.gather(
                    *(
                        self._lose(lease.partition, why="lease taken over", only=lease)
                        for lease, kept in zip(held, renewed, strict=True)
                        if not kept
                    )
                )
                self._placement_due.set()
            except Exception as exc:
                _log.exception("cluster_heartbeat_failed", error=repr(exc))

    async def _guard(self) -> None:
        keeper = self._keeper
        assert keeper is not None
        while True:
            due = keeper.next_expiry()
            timeout = None if due is None else max(0.0, due - self._clock())
            self._guard_wake.clear()
            # asyncio.timeout, not wait_for: wait_for (3.11) swallows a cancel that lands
            # as the event is set, and the guard then outlived aclose, which never ended.
            with suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._guard_wake.wait()
            # All at once: each step-down stops acting at its first line, while telling
            # the listeners may take seconds (a consumer finishing its message in hand).
            # One by one, a later partition stayed "held" for those seconds, and a
            # step-down that came after the partition was acquired anew gave up the new
            # holding, leaving its lease key unserved until it ran out.
            await asyncio.gather(
                *(
                    self._lose(lease.partition, why="lease not renewed in time", only=lease)
                    for lease in keeper.expired()
                )
            )

    async def _placement(self) -> None:
        while True:
            # Also when a member or a lease seen here runs out: a dead node's partitions are
            # free from that moment, and waiting for the next heartbeat would add up to a
            # third of the TTL to every takeover (nats-server 2.9 announces no expiry).
            with suppress(TimeoutError):
                async with asyncio.timeout(self._until_an_expiry()):
                    await self._placement_due.wait()
            self._placement_due.clear()
            try:
                await self._place()
            except Exception as exc:
                _log.exception("cluster_placement_failed", error=repr(exc))

    def _until_an_expiry(self) -> float | None:
        """Seconds until the next key another node wrote runs out here, a little after."""
        ends = [
            seen.at + self.config.lease_ttl
            for view in (self._members, self._leases)
            if view is not None
            for key, seen in view.live().items()
            if self.node_id not in (key, seen.value)
        ]
        return None if not ends else max(0.0, min(ends) - self._clock()) + _AFTER_EXPIRY

    def _wake_placement(self, _key: str) -> None:
        """A member or a lease changed: place again now, not at the next heartbeat."""
        self._placement_due.set()

    # --- placement ------------------------------------------------------------------------

    async def _place(self) -> None:
        keeper = self._keeper
        assert keeper is not None
        async with self._placing:
            if self._leaving:
                return
            desired = assignment(self.config.partitions, self.members())
            for partition in list(self._active):
                if desired.get(partition) != self.node_id and partition not in self._releasing:
                    # A move while serving: the partition answers nobody while it drains,
                    # so its turns get one lease TTL, then continue on the new owner from
                    # the journal (only a leaving node waits its whole drain timeout).
                    release = self._release(partition, within=self.config.lease_ttl)
                    self._spawn(release, "release")
            wanted = [
                p
                for p, node in desired.items()
                if node == self.node_id and p not in keeper.held and p not in self._releasing
            ]
            leases = await asyncio.gather(*(self._try_acquire(p) for p in wanted))
            gained = [lease for lease in leases if lease is not None]
            if gained:
                self._guard_wake.set()
                await self._gain(gained)

    async def _try_acquire(self, partition: int) -> Lease | None:
        assert self._keeper is not None
        try:
            return await self._keeper.acquire(partition)
        except (nats.errors.Error, TimeoutError) as exc:
            _log.warning("lease_acquire_failed", partition=partition, error=repr(exc), exc_info=exc)
            return None

    async def _gain(self, leases: list[Lease]) -> None:
        """Act for the partitions just acquired: raise their fences, then have the host
        recover them together, then tell the listeners of each."""
        assert self._keeper is not None
        raised = await asyncio.gather(*(self._raise_fence(lease) for lease in leases))
        holdings: dict[int, int] = {}
        for lease, fence_raised in zip(leases, raised, strict=True):
            if not fence_raised or self._keeper.held.get(lease.partition) is not lease:
                continue  # the lease given back, or lost while the fence was being raised
            partition, generation = lease.partition, lease.generation
            self._active[partition] = generation
            holdings[partition] = generation
            self.gains += 1
            _log.info("partition_gained", partition=partition, generation=generation)
        if not holdings:
            return
        if self.host is not None:
            try:
                await self.host.gained(holdings)
            except Exception as exc:
                _log.exception(
                    "partition_host_failed", partitions=sorted(holdings), error=repr(exc)
                )
        await asyncio.gather(*(self._tell(p, g) for p, g in holdings.items()))

    async def _raise_fence(self, lease: Lease) -> bool:
        """Raise the partition's fence; without it the node must not act: on a failure the
        lease is given back and False returned."""
        assert self._keeper is not None
        if self.fence is None:
            return True
        try:
            await self.fence(lease.partition, lease.generation)
        except Exception as exc:
            _log.exception("partition_fence_failed", partition=lease.partition, error=repr(exc))
            await self._keeper.release(lease.partition)
            return False
        return True

    async def _lose(self, partition: int, *, why: str, only: Lease | None = None) -> None:
        """Step down at once: the lease is gone (or going) without a graceful hand-over.

        ``only``: step down from that holding only, not from a later one of the partition.
        """
        assert self._keeper is not None
        if only is not None and self._newer_than(only):
            return  # acquired anew since that lease ran out: the new holding stays
        self._keeper.forget(partition)
        draining = self._draining.pop(partition, None)  # its drain writes nothing more
        generation = self._active.pop(partition, None)
        if generation is None:
            if draining is not None:
                _log.warning("partition_lost_while_draining", partition=partition, why=why)
            return
        self.losses += 1
        _log.warning("partition_lost", partition=partition, generation=generation, why=why)
        if self.host is not None:
            try:
                await self.host.lost(partition, graceful=False)
            except Exception as exc:
                _log.exception("partition_host_failed", partition=partition, error=repr(exc))
        await self._tell(partition, None)

    def _newer_than(self, lease: Lease) -> bool:
        """Whether the node holds ``lease``'s partition under a later lease than it."""
        assert self._keeper is not None
        current = self._keeper.held.get(lease.partition)
        if current is not None and current is not lease:
            return True
        return self._active.get(lease.partition, lease.generation) != lease.generation

    async def _release(self, partition: int, *, within: float | None = None) -> None:
        """Hand a partition over: stop new work, let the host drain it (for up to
        ``within`` seconds), delete the lease."""
        assert self._keeper is not None
        if partition in self._releasing:
            return
        generation = self._active.pop(partition, None)
        if generation is None:
            return
        self._releasing.add(partition)
        self._draining[partition] = generation
        try:
            await self._tell(partition, None)
            if self.host is not None:
                try:
                    await self.host.lost(partition, graceful=True, within=within)
                except Exception as exc:
                    _log.exception("partition_host_failed", partition=partition, error=repr(exc))
            self._draining.pop(partition, None)  # nothing may be written from here on
            await self._keeper.release(partition)
            _log.info("partition_released", partition=partition, generation=generation)
        finally:
            self._draining.pop(partition, None)
            self._releasing.discard(partition)

    async def _tell(self, partition: int, generation: int | None) -> None:
        for listener in list(self._listeners):
            try:
                await listener(partition, generation)
            except Exception as exc:
                _log.exception("ownership_listener_failed", partition=partition, error=repr(exc))

    def _spawn(self, work: Awaitable[Any], what: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception as exc:
                _log.exception("cluster_task_failed", what=what, error=repr(exc))

        task = asyncio.get_running_loop().create_task(run())
        self._side.add(task)
        task.add_done_callback(self._side.discard)


@asynccontextmanager
async def open_node(
    config: ClusterConfig | ClusterNode,
    *,
    fence: Fence | None = None,
    host: PartitionHost | None = None,
) -> AsyncIterator[ClusterNode]:
    """Start a node for the block; on exit it hands its partitions over and disconnects.

    Pass a ``ClusterNode`` made beforehand when the store and the runtime need it first
    (its ``fencing_token`` for the store, ``check_owner`` for the runtime).

    Raises:
        ClusterUnavailableError: NATS does not answer.
        ConfigError: the cluster's buckets were made with another lease TTL.
    """
    node = config if isinstance(config, ClusterNode) else ClusterNode(config)
    if fence is not None:
        node.fence = fence
    if host is not None:
        node.host = host
    try:
        await node.start()
        yield node
        await node.leave()
    finally:
        await node.aclose()
