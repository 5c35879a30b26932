"""``Runtime.accept`` refuses, with ``FencedWriteError``, what the journal refused.

Two runtimes on one PostgreSQL schema stand for two nodes: A holds the partition under
generation 1, then B raises its fence to 2 (took it over). A message A accepts after that
is not in the journal, so ``accept`` must raise rather than return as if it were.
"""

from __future__ import annotations

import pytest

from relaybaton.cluster import partition_of
from relaybaton.errors import FencedWriteError
from tests.cluster._producing import PARTITIONS, HeldPartitions, node_runtime, user_texts

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_accept_raises_for_a_fenced_conversation_and_journals_nothing(schema: str) -> None:
    cid = "fenced-accept"
    partition = partition_of(cid, PARTITIONS)
    other = next(
        f"other-{i}" for i in range(1000) if partition_of(f"other-{i}", PARTITIONS) == partition
    )
    a = HeldPartitions(held=(partition,))
    b = HeldPartitions(held=())
    async with node_runtime(schema, fencing=a) as node_a:
        first = await node_a.accept(cid, "first", message_id="m1")
        await first
        b.held[partition] = 2
        async with node_runtime(schema, fencing=b) as node_b:  # raises the fence to 2
            with pytest.raises(FencedWriteError) as refused:
                await node_a.accept(cid, "second", message_id="m2")
            assert partition in refused.value.partitions
            # A conversation A never wrote is refused the same way: nothing of it lands.
            with pytest.raises(FencedWriteError):
                await node_a.accept(other, "hello", message_id="o1")
            # The journal, read by the new holder, has the first message only.
            assert await node_b.conversations.load(cid) is not None
            assert user_texts(node_b, cid) == ["first"]
            conversation = node_b.conversation(cid)
            assert conversation is not None
            assert "m2" not in conversation.seen
            assert await node_b.conversations.load(other) is None
