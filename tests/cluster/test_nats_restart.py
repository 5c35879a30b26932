"""A node whose NATS server restarts: it steps down by its own clock while NATS is away
past the lease TTL, then re-acquires its partitions and consumes again; every message
the stream acknowledged is processed once, and answered.

The producer's client reconnects as nats-py does by default (2 s between attempts), so
after the node, which waits a quarter of a second: the replies the node flushed on
reconnecting reached no inbox, and only publishing them again later gets them there.

The test runs its own nats-server (another port, its own store directory), so restarting
it disturbs nobody else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import pytest

from relaybaton.adapters import UserMessage
from relaybaton.cluster import REPLY_TO_HEADER, partition_of
from tests._nats import wait_until
from tests.cluster._serve import PARTITIONS, TTL, Replies, cluster_flow, journaled, start_node
from tests.cluster._servers import NATS_SERVER, OwnNats

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
async def own_nats(tmp_path: Path) -> AsyncIterator[OwnNats]:
    if not Path(NATS_SERVER).exists():  # noqa: ASYNC240 - once, at set-up
        pytest.skip("nats-server is not installed")
    server = OwnNats(tmp_path / "nats-store")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_node_carries_on_after_its_nats_server_restarts(
    tmp_path: Path,
    database_url: str,
    own_nats: OwnNats,
) -> None:
    prefix = "rbrestart"
    flow = cluster_flow(tmp_path, prefix)
    node = await start_node(
        flow, database_url, tmp_path, "node", nats_url=own_nats.url, log_level="info"
    )
    log = node.log
    nc = await nats.connect(own_nats.url, max_reconnect_attempts=-1, reconnect_time_wait=2)
    try:
        js = nc.jetstream()
        replies = Replies()
        inbox = nc.new_inbox()
        await nc.subscribe(inbox, cb=replies.take)
        conversations = [f"nr-{i}" for i in range(10)]

        async def publish(round_: int) -> set[str]:
            sent = set()
            for cid in conversations:
                mid = f"{cid}.m{round_}"
                body = {"conversation_id": cid, "message_id": mid, "text": f"Hello {round_}"}
                deadline = time.monotonic() + 20
                while True:  # a producer retries until the stream acknowledges
                    try:
                        await js.publish(
                            f"{prefix}.in.{partition_of(cid, PARTITIONS)}",
                            msgspec.json.encode(body),
                            headers={"Nats-Msg-Id": mid, REPLY_TO_HEADER: inbox},
                            timeout=2,
                        )
                        break
                    except Exception:
                        assert time.monotonic() < deadline, "the stream never acknowledged"
                        await asyncio.sleep(0.2)
                sent.add(mid)
            return sent

        first = await publish(0)
        await replies.wait_for(first, within=30)
        # A light load across the restart: round 1 is published while NATS stops (the
        # producer retries what the stream did not acknowledge) and lands after it.
        second_task = asyncio.get_running_loop().create_task(publish(1))
        await replies.wait_for({f"{conversations[0]}.m1"}, within=30)
        await own_nats.stop()
        await asyncio.sleep(TTL + 1)  # NATS away past the lease TTL: the node steps down
        await own_nats.start()
        second = await second_task
        await replies.wait_for(first | second, within=40)
        text = log.read_text()
        assert "lease not renewed in time" in text  # stepped down by its own clock
        # The node publishes what it sent around the break again once it is back.
        await wait_until(lambda: "nats_replies_published_again" in log.read_text(), within=15)
        assert node.process.returncode is None
        stored = await journaled(database_url, conversations)
        for cid, conversation in stored.items():
            assert conversation is not None, cid
            users = [m.text for m in conversation.transcript if isinstance(m, UserMessage)]
            assert users == ["Hello 0", "Hello 1"], (cid, users)
    finally:
        await nc.close()
        if node.process.returncode is None:
            node.process.terminate()
        await asyncio.wait_for(node.process.wait(), 20)
