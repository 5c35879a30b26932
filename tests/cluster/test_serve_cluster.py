"""Two real ``relaybaton serve --cluster`` processes on one NATS and one PostgreSQL.

They split the partitions; a conversation is answered by its owner, and by the other node
through its owner; SIGTERM hands a node's partitions over within about a second;
SIGKILL within the lease TTL and a second.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from relaybaton.cluster import partition_of
from tests.cluster._serve import (
    PARTITIONS,
    TTL,
    all_held_by,
    cluster_flow,
    holders,
    post_answered,
    start_node,
    wait_for_placement,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_two_nodes_split_hand_over_on_sigterm_and_take_over_after_sigkill(
    tmp_path: Path, database_url: str, prefix: str
) -> None:
    flow = cluster_flow(tmp_path, prefix)
    a = await start_node(flow, database_url, tmp_path, "a")
    b = await start_node(flow, database_url, tmp_path, "b")
    try:
        await wait_for_placement(prefix, all_held_by(a, b), within=30)
        held = await holders(prefix)
        theirs = next(p for p, v in held.items() if v.startswith(b.id_prefix))
        conversation = next(
            f"conv-{i}" for i in range(10_000) if partition_of(f"conv-{i}", PARTITIONS) == theirs
        )
        async with aiohttp.ClientSession() as http:
            path = f"/v1/conversations/{conversation}/messages"
            # The lease shows in KV a moment before its node has raised the fence and acts:
            # meanwhile it answers 503 with Retry-After, and a client retries.
            body = await post_answered(http, b.url + path, "Hello")
            assert body["replies"], body
            assert body["error"] is None
            # The other node answers it too, from the owner (forwarded): the same message
            # id is the same message, answered once.
            again = {"text": "Hello", "message_id": "Hello"}
            async with http.post(a.url + path, json=again) as forwarded:
                assert forwarded.status == 200, await forwarded.text()
                assert (await forwarded.json())["replies"] == body["replies"]

            b.process.send_signal(signal.SIGTERM)
            took = await wait_for_placement(prefix, all_held_by(a), within=5)
            assert took < 1.5, f"graceful hand-over took {took:.2f} s"
            assert await asyncio.wait_for(b.process.wait(), 10) == 0
            # The conversation continues on its new owner, from the shared journal.
            assert (await post_answered(http, a.url + path, "Hello again"))["replies"]
            async with http.get(a.url + f"/v1/conversations/{conversation}") as read:
                transcript = (await read.json())["transcript"]
            # Both messages, each once: the new owner continued the journaled conversation.
            users = [item["text"] for item in transcript if item.get("type") == "user"]
            assert users == ["Hello", "Hello again"]

            c = await start_node(flow, database_url, tmp_path, "c")
            try:
                await wait_for_placement(prefix, all_held_by(a, c), within=30)
                c.process.kill()
                killed = time.monotonic()
                await wait_for_placement(prefix, all_held_by(a), within=TTL + 5)
                took = time.monotonic() - killed
                assert took < TTL + 1.0, f"takeover after SIGKILL took {took:.2f} s"
            finally:
                if c.process.returncode is None:
                    c.process.kill()
                await c.process.wait()
    finally:
        for node in (a, b):
            if node.process.returncode is None:
                node.process.kill()
            await node.process.wait()
