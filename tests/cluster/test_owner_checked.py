"""A person's actions and decisions are taken by a conversation's owner only.

Two nodes on the real NATS and PostgreSQL. A conversation waits for an approval on node
A; its partition moves to node B. On A, a decision, a pause, a note, taking the baton or
a breakpoint is refused with the retryable ``PartitionNotOwnedError`` (HTTP 503
partition_moved), and nothing of them reaches the journal; on B the decision is taken.
"""

from __future__ import annotations

import uuid

import pytest

from relaybaton.actors._operations import Operations
from relaybaton.cluster import assignment, partition_of
from relaybaton.errors import PartitionNotOwnedError
from relaybaton.service._approval_desk import RuntimeApprovals
from relaybaton.testing import ScriptedModel
from tests._nats import wait_until
from tests.actors.test_durable import Ledger, refund_agent, refund_script
from tests.cluster._in_process_node import NODE_PARTITIONS as PARTITIONS
from tests.cluster._in_process_node import cluster_node
from tests.cluster._node_ids import split_ids

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_actions_and_decisions_on_another_nodes_conversation_are_refused(
    prefix: str, schema: str
) -> None:
    ids = split_ids("a", "b", partitions=PARTITIONS, tag=uuid.uuid4().hex[:6])
    a_id, b_id = ids["a"], ids["b"]  # each holds a share when both are up
    moves = next(p for p, n in assignment(PARTITIONS, sorted([a_id, b_id])).items() if n == b_id)
    cid = next(f"r{i}" for i in range(10_000) if partition_of(f"r{i}", PARTITIONS) == moves)
    ledger = Ledger()
    agent, models = refund_agent(ledger), {"m": ScriptedModel(refund_script)}
    async with cluster_node(prefix, schema, a_id, agent, models) as (a, on_a):
        waiting = on_a.submit(cid, "refund 150")
        await on_a.settle()
        [request] = on_a.approvals()
        async with cluster_node(prefix, schema, b_id, agent, models) as (b, on_b):
            await wait_until(lambda: moves in b.held() and moves not in a.held(), within=5)
            with pytest.raises(PartitionNotOwnedError):  # A's waiter hears: ask the owner
                await waiting
            journal = on_a.conversations.journal
            assert journal is not None
            desk_a = RuntimeApprovals(on_a, shared=journal.store)
            with pytest.raises(PartitionNotOwnedError):
                await desk_a.decide(request.approval_id, "approve", arguments=None, reason="")
            operations = Operations(on_a)
            refusals = [
                operations.pause(cid, "ops", reason="look"),
                operations.add_note(cid, "ops", "careful"),
                operations.take_baton(cid, "ops", epoch=0),
                operations.set_breakpoints(cid, "ops", ["issue_refund"]),
                operations.fork(cid, "ops", upto=1, new_id=f"{cid}-copy"),
            ]
            for action in refusals:
                with pytest.raises(PartitionNotOwnedError) as refused:
                    await action
                assert refused.value.partition == moves
            # The kernel's own entry points refuse too (not only the agent layer's).
            with pytest.raises(PartitionNotOwnedError):
                on_a.conversations.pause(cid, "ops")
            assert on_a.conversation(cid) is None
            # The owner recovered the conversation from the journal: no pause, no note, no
            # breakpoint of A's reached it; it takes the decision and the refund runs once.
            # (The partition is B's before B has read it back: a batch of gains recovers
            # together, after every fence of the batch is raised.)
            await wait_until(lambda: on_b.conversation(cid) is not None, within=10)
            conversation = on_b.conversation(cid)
            assert conversation is not None
            assert conversation.control is None
            desk_b = RuntimeApprovals(on_b, shared=journal.store)
            await desk_b.decide(request.approval_id, "approve", arguments=None, reason="")
            await on_b.settle()
            assert [amount for _, amount in ledger.calls] == [150]
