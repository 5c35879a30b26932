"""Producers' messages through real ``relaybaton serve --cluster`` processes.

Two nodes serve examples/customer_service.toml; messages are published as the README's
producer does (``Nats-Msg-Id``, ``Relaybaton-Reply-To``); one node is stopped with SIGTERM
while messages are in flight. Every message is then in the journal once, in order, and
answered on the producer's inbox.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import msgspec
import nats
import pytest

from relaybaton.adapters import UserMessage
from relaybaton.cluster import REPLY_TO_HEADER, partition_of
from tests._nats import NATS_URL
from tests.cluster._serve import (
    PARTITIONS,
    Node,
    Replies,
    all_held_by,
    cluster_flow,
    journaled,
    start_node,
    wait_for_placement,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def accepted_on(node: Node, http: aiohttp.ClientSession) -> float:
    """What the node's metrics endpoint says it accepted from NATS."""
    async with http.get(node.url + "/metrics") as answer:
        text = await answer.text()
    line = next(x for x in text.splitlines() if x.startswith("relaybaton_nats_messages_accepted"))
    return float(line.rsplit(" ", 1)[1])


async def test_producers_messages_are_processed_once_across_a_sigterm(
    tmp_path: Path, database_url: str, prefix: str
) -> None:
    flow = cluster_flow(tmp_path, prefix)
    a = await start_node(flow, database_url, tmp_path, "a")
    b = await start_node(flow, database_url, tmp_path, "b")
    nc = await nats.connect(NATS_URL)
    try:
        await wait_for_placement(prefix, all_held_by(a, b), within=30)
        js = nc.jetstream()
        replies = Replies()
        inbox = nc.new_inbox()
        await nc.subscribe(inbox, cb=replies.take)
        conversations = [f"np-{i}" for i in range(24)]

        async def publish(round_: int) -> set[str]:
            sent = set()
            for cid in conversations:
                mid = f"{cid}.m{round_}"
                body = {"conversation_id": cid, "message_id": mid, "text": f"Hello {round_}"}
                await js.publish(
                    f"{prefix}.in.{partition_of(cid, PARTITIONS)}",
                    msgspec.json.encode(body),
                    headers={"Nats-Msg-Id": mid, REPLY_TO_HEADER: inbox},
                )
                sent.add(mid)
            return sent

        first = await publish(0)
        await replies.wait_for(first, within=30)
        async with aiohttp.ClientSession() as http:
            # Both nodes consumed: each holds some partitions of the 24 conversations.
            assert await accepted_on(a, http) > 0
            assert await accepted_on(b, http) > 0
            assert await accepted_on(a, http) + await accepted_on(b, http) == len(first)
        second = await publish(1)
        b.process.send_signal(signal.SIGTERM)  # mid-stream: round 1 is being consumed
        third = await publish(2)
        await replies.wait_for(first | second | third, within=40)
        assert await asyncio.wait_for(b.process.wait(), 15) == 0, b.log.read_text()[-3000:]

        info = await js.stream_info(f"{prefix.upper()}_IN")
        assert info.state.messages == 0  # every message acked
        for mid, got in replies.by_id.items():
            assert all(r.status == "replied" for r in got), (mid, got)
        stored = await journaled(database_url, conversations)
        for cid, conversation in stored.items():
            assert conversation is not None, cid
            users = [m.text for m in conversation.transcript if isinstance(m, UserMessage)]
            assert users == ["Hello 0", "Hello 1", "Hello 2"], (cid, users)
            assert {f"{cid}.m{r}" for r in range(3)} <= set(conversation.seen)
    finally:
        await nc.close()
        for node in (a, b):
            if node.process.returncode is None:
                node.process.kill()
            await node.process.wait()
