"""A fixed split of partitions between named nodes, which a test moves by hand.

Each node sees the split through a ``SplitView`` (an ``Ownership``). ``Split.move`` hands a
partition from its holder to another node (or to nobody) and awaits both nodes' listeners,
the loss before the gain, as a lease manager reports them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import final

from relaybaton.cluster._partitions import OwnershipListener


@final
class Split:
    def __init__(self, partitions: int, owners: dict[int, str | None]) -> None:
        self.partitions = partitions
        self.owners = dict(owners)
        self.generations = dict.fromkeys(range(partitions), 1)
        self.views: dict[str, SplitView] = {}

    def view(self, node_id: str) -> SplitView:
        view = SplitView(self, node_id)
        self.views[node_id] = view
        return view

    async def move(self, partition: int, to: str | None) -> None:
        before = self.owners.get(partition)
        self.owners[partition] = None
        if before is not None and before in self.views:
            await self.views[before].tell(partition, None)
        self.generations[partition] += 1
        self.owners[partition] = to
        if to is not None and to in self.views:
            await self.views[to].tell(partition, self.generations[partition])


@final
class SplitView:
    """One node's ``Ownership`` of a ``Split``."""

    def __init__(self, split: Split, node_id: str) -> None:
        self.split = split
        self._node_id = node_id
        self._listeners: list[OwnershipListener] = []
        self._replays: list[asyncio.Task[None]] = []

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def partitions(self) -> int:
        return self.split.partitions

    def generation(self, partition: int) -> int | None:
        if self.split.owners.get(partition) != self._node_id:
            return None
        return self.split.generations[partition]

    def owner_of(self, partition: int) -> str | None:
        return self.split.owners.get(partition)

    def held(self) -> Iterable[int]:
        return [p for p, owner in self.split.owners.items() if owner == self._node_id]

    def listen(self, listener: OwnershipListener) -> None:
        self._listeners.append(listener)
        for partition in sorted(self.held()):
            generation = self.generation(partition)
            self._replays.append(asyncio.create_task(listener(partition, generation)))

    async def settled(self) -> None:
        """Wait until the gains replayed to listeners are heard."""
        await asyncio.gather(*self._replays)
        self._replays.clear()

    async def tell(self, partition: int, generation: int | None) -> None:
        for listener in self._listeners:
            await listener(partition, generation)
