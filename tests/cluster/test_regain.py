"""A node that loses a partition and gains it back acts on what the journal holds then.

Nodes on the real NATS, each with its runtime on one PostgreSQL schema (its store fenced
by the node's leases, as ``serve --cluster`` wires them). Nothing of the earlier time a
node held a partition may count after it regains it: not the conversations it had in
memory (the transcript and the message ids it saw would be stale), and not a refusal its
journal met meanwhile.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable

import pytest

from relaybaton.actors import Runtime
from relaybaton.cluster import assignment, partition_of
from relaybaton.errors import FencedWriteError, PartitionNotOwnedError
from relaybaton.runtime._journal import Journal
from relaybaton.runtime._store import Head
from relaybaton.stores import PostgresStore
from relaybaton.testing import ScriptedModel
from tests._nats import wait_until
from tests._postgres import PG_DSN
from tests.actors.test_durable import Ledger, refund_agent, refund_script
from tests.cluster._in_process_node import NODE_PARTITIONS, TTL, cluster_node
from tests.cluster._node_ids import split_ids
from tests.cluster._producing import user_texts

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

PARTITIONS = NODE_PARTITIONS


async def say(runtime: Runtime, conversation_id: str, text: str, message_id: str) -> None:
    await (await runtime.accept(conversation_id, text, message_id=message_id))


async def test_a_regained_partition_is_read_from_the_journal_the_other_node_wrote(
    prefix: str, schema: str
) -> None:
    ids = split_ids("a", "b", partitions=PARTITIONS, tag=uuid.uuid4().hex[:6])
    a_id, b_id = ids["a"], ids["b"]  # each holds a share when both are up
    moves = next(p for p, n in assignment(PARTITIONS, sorted([a_id, b_id])).items() if n == b_id)
    cid = next(f"c{i}" for i in range(10_000) if partition_of(f"c{i}", PARTITIONS) == moves)
    async with cluster_node(prefix, schema, a_id) as (a, on_a):
        assert moves in a.held()  # alone, it holds everything
        await say(on_a, cid, "one", "m1")
        async with cluster_node(prefix, schema, b_id) as (b, on_b):
            await wait_until(lambda: moves in b.held() and moves not in a.held(), within=5)
            assert on_a.conversation(cid) is None  # evicted with its partition
            with pytest.raises(PartitionNotOwnedError):
                await on_a.accept(cid, "refused", message_id="mx")
            await say(on_b, cid, "two", "m2")
            await say(on_b, cid, "three", "m3")
        # B left: the partition comes back to A, under a newer generation.
        await wait_until(lambda: moves in a.held(), within=5)
        await say(on_a, cid, "four", "m4")
        assert user_texts(on_a, cid) == ["one", "two", "three", "four"]
        # A message B accepted, delivered again to A: recognized by its id, not processed.
        before = on_a.conversations.duplicates
        await say(on_a, cid, "two", "m2")
        assert on_a.conversations.duplicates == before + 1
        assert user_texts(on_a, cid) == ["one", "two", "three", "four"]


async def test_a_refusal_met_before_a_regain_does_not_refuse_after_it(
    prefix: str, schema: str
) -> None:
    cid = "regained"
    partition = partition_of(cid, PARTITIONS)
    async with cluster_node(prefix, schema, f"a-{uuid.uuid4().hex[:6]}") as (a, on_a):
        await say(on_a, cid, "one", "m1")
        # A newer holder raises the partition's fence (as one that took it over would):
        # A's next write there is refused, and A steps down from the partition.
        newer = PostgresStore(PG_DSN, schema=schema, application_name="newer")
        await newer.connect()
        try:
            await newer.raise_fence(partition, a.held()[partition] + 1)
        finally:
            await newer.aclose()
        with pytest.raises(FencedWriteError):
            await on_a.accept(cid, "lost", message_id="m2")
        assert partition not in a.held()
        # Alone in the cluster, A takes the partition again once its old lease expires,
        # under a generation above the raised fence.
        await wait_until(lambda: partition in a.held(), within=TTL + 4)
        await say(on_a, cid, "two", "m3")
        assert user_texts(on_a, cid) == ["one", "two"]
        # The refused message was never journaled: sent again, it is processed.
        await say(on_a, cid, "lost", "m2")
        assert user_texts(on_a, cid) == ["one", "two", "lost"]


async def test_the_partitions_gained_together_read_the_journal_once(
    prefix: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, models = refund_agent(Ledger()), {"m": ScriptedModel(refund_script)}
    cids = [f"w{i}" for i in range(4 * PARTITIONS)]
    assert len({partition_of(c, PARTITIONS) for c in cids}) > 1
    async with cluster_node(prefix, schema, "first", agent, models) as (_, on_first):
        waiting = [on_first.submit(c, "refund 150") for c in cids]
        await on_first.settle()
        assert len(on_first.approvals()) == len(cids)  # each one unfinished, in the journal
    # The first node handed everything over when it left: its waiters heard so.
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(o, PartitionNotOwnedError) for o in outcomes)

    reads: list[bool] = []
    forgets: list[list[str]] = []
    heads, forget_fenced = PostgresStore.heads, Journal.forget_fenced

    async def counted_heads(store: PostgresStore, *, unfinished_only: bool = False) -> list[Head]:
        reads.append(unfinished_only)
        return await heads(store, unfinished_only=unfinished_only)

    def counted_forget(journal: Journal, conversation_ids: Iterable[str]) -> None:
        forgets.append(list(conversation_ids))
        forget_fenced(journal, forgets[-1])

    monkeypatch.setattr(PostgresStore, "heads", counted_heads)
    monkeypatch.setattr(Journal, "forget_fenced", counted_forget)
    async with cluster_node(prefix, schema, "second", agent, models) as (second, on_second):
        # Alone, it took every partition in one placement: one read served them all.
        assert len(second.held()) == PARTITIONS
        assert reads == [True]
        assert len(forgets) == 1
        # And each partition recovered its own conversations, still waiting for a person.
        assert sorted(on_second.conversations.by_id) == sorted(cids)
        assert len(on_second.approvals()) == len(cids)
