"""Partition fences in PostgreSQL: a write under a lease generation that was taken over is
refused, whole, and the journal keeps the rest of a batch and fails the refused waiters."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

import pytest

from relaybaton.cluster import partition_of
from relaybaton.errors import FencedWriteError
from relaybaton.runtime import Durability
from relaybaton.stores import PostgresStore
from tests._postgres import PG_DSN
from tests.cluster._records import batch

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

PARTITIONS = 8


def note_refused(outcomes: dict[str, str], conversation_id: str, _error: Exception) -> None:
    outcomes[conversation_id] = "refused"


class Holder:
    """A node's leases as its store sees them: partition -> generation."""

    def __init__(self) -> None:
        self.held: dict[int, int] = {}

    def token(self, conversation_id: str) -> tuple[int, int] | None:
        partition = partition_of(conversation_id, PARTITIONS)
        generation = self.held.get(partition)
        return None if generation is None else (partition, generation)


async def test_a_write_under_a_taken_over_generation_is_refused_and_leaves_nothing(
    schema: str,
) -> None:
    old, new = Holder(), Holder()
    partition = partition_of("c1", PARTITIONS)
    a = PostgresStore(PG_DSN, schema=schema, fencing=old.token)
    b = PostgresStore(PG_DSN, schema=schema, fencing=new.token)
    try:
        old.held[partition] = 5
        await a.raise_fence(partition, 5)
        await a.write(batch("c1", 1))
        new.held[partition] = 9
        await b.raise_fence(partition, 9)  # b took the partition over
        with pytest.raises(FencedWriteError) as refused:
            await a.write(batch("c1", 2))
        assert refused.value.conversation_ids == {"c1"}
        assert refused.value.partitions == {partition}
        assert len(await a.read("c1")) == 1  # the refused batch left nothing
        assert [h.seq for h in await a.heads()] == [1]
        await b.write(batch("c1", 2))  # the new holder writes
        assert len(await b.read("c1")) == 2
        with pytest.raises(FencedWriteError):  # the fence never goes down
            await a.raise_fence(partition, 5)
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_write_for_a_partition_not_held_is_refused(schema: str) -> None:
    holder = Holder()
    store = PostgresStore(PG_DSN, schema=schema, fencing=holder.token)
    try:
        with pytest.raises(FencedWriteError) as refused:
            await store.write(batch("c1", 1))
        assert refused.value.conversation_ids == {"c1"}
        assert await store.read("c1") == []
    finally:
        await store.aclose()


async def test_the_journal_commits_the_rest_and_fails_only_the_fenced_waiters(
    schema: str,
) -> None:
    from relaybaton.adapters import ChatMessage
    from relaybaton.runtime import Journal, MonotonicClock
    from relaybaton.runtime._conversation import Conversation
    from relaybaton.runtime._journal_events import Replied

    holder = Holder()
    kept, lost = (
        "c1",
        next(
            f"c{i}"
            for i in range(2, 100)
            if partition_of(f"c{i}", PARTITIONS) != partition_of("c1", PARTITIONS)
        ),
    )
    store = PostgresStore(PG_DSN, schema=schema, fencing=holder.token)
    journal: Journal[ChatMessage] = Journal(
        store, ChatMessage, clock=MonotonicClock(), durability=Durability.SYNC
    )
    fenced: list[FencedWriteError] = []
    journal.on_fenced = fenced.append
    for conversation_id, generation in ((kept, 3), (lost, 4)):
        holder.held[partition_of(conversation_id, PARTITIONS)] = generation
        await store.raise_fence(partition_of(conversation_id, PARTITIONS), generation)
    await store.raise_fence(partition_of(lost, PARTITIONS), 7)  # another node took it
    outcomes: dict[str, str] = {}
    journal.start()
    try:
        for conversation_id in (kept, lost):
            conversation = Conversation(id=conversation_id, owner="triage")
            journal.record(conversation, Replied(agent="triage", text="hi"))
            journal.after_commit(
                partial(outcomes.__setitem__, conversation_id, "answered"),
                conversation_id=conversation_id,
                refused=partial(note_refused, outcomes, conversation_id),
            )
        await journal.flush()
    finally:
        await journal.aclose()
        await store.aclose()
    assert outcomes == {kept: "answered", lost: "refused"}
    assert [e.conversation_ids for e in fenced] == [frozenset({lost})]
    reader = PostgresStore(PG_DSN, schema=schema)
    try:
        assert len(await reader.read(kept)) == 1
        assert await reader.read(lost) == []
    finally:
        await reader.aclose()


async def test_a_writer_stalled_mid_transaction_does_not_hold_a_takeover_past_its_limit(
    schema: str,
) -> None:
    # A node stopped (SIGSTOP, a long pause) inside a write transaction keeps the share lock
    # on its partition's fence row; the next holder's raise would wait until it woke. With
    # the idle-transaction limit the server ends that session and the raise goes through.
    old, new = Holder(), Holder()
    partition = partition_of("c1", PARTITIONS)
    a = PostgresStore(PG_DSN, schema=schema, fencing=old.token)
    a.idle_transaction_limit_s = 0.5
    b = PostgresStore(PG_DSN, schema=schema, fencing=new.token)
    try:
        old.held[partition] = 5
        await a.raise_fence(partition, 5)
        await a.write(batch("c1", 1))  # a's writing session now carries the limit

        async def stall_holding_the_fence(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute(
                    f'SELECT generation FROM "{schema}".partition_fence'
                    " WHERE partition = %s FOR SHARE",
                    (partition,),
                )
                await asyncio.sleep(3)  # the node is stopped here, idle in its transaction

        stalled = asyncio.create_task(a._writer.run(stall_holding_the_fence))
        await asyncio.sleep(0.1)  # the share lock is taken
        new.held[partition] = 9
        started = time.monotonic()
        await b.raise_fence(partition, 9)
        waited = time.monotonic() - started
        assert waited < 2.5, f"the raise waited {waited:.1f} s for the stalled writer"
        await stalled  # its session was ended; the link ran the operation again afresh
        assert a.reconnects == 1
        with pytest.raises(FencedWriteError):  # and what it writes next is refused
            await a.write(batch("c1", 2))
    finally:
        await a.aclose()
        await b.aclose()
