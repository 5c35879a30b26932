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
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import pytest

from relaybaton.adapters import UserMessage
from relaybaton.cluster import REPLY_TO_HEADER, partition_of
from tests._nats import wait_until
from tests.cluster._servers import NATS_SERVER, OwnNats
from tests.cluster.test_serve_cluster import PARTITIONS, TTL
from tests.cluster.test_serve_cluster_producers import (
    Replies,
    cluster_flow,
    journal_url,  # noqa: F401 - a fixture
    journaled,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


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


async def start_node(
    flow: Path, nats_url: str, database: str, log: Path
) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RELAYBATON_API_TOKENS", None)
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relaybaton", "--log-level", "info", "serve", str(flow),
            "--port", "0", "--cluster", nats_url, "--store", database, "--drain-timeout", "5",
            "--no-console", stdout=asyncio.subprocess.PIPE, stderr=errors, env=env,
        )  # fmt: skip
    assert process.stdout is not None
    banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    assert "serving flow" in banner, log.read_text()[-3000:]  # noqa: ASYNC240 - on failure
    return process


async def test_a_node_carries_on_after_its_nats_server_restarts(
    tmp_path: Path,
    journal_url: str,  # noqa: F811 - the fixture
    own_nats: OwnNats,
) -> None:
    prefix = "rbrestart"
    flow = cluster_flow(tmp_path, prefix)
    log = tmp_path / "node.log"
    node = await start_node(flow, own_nats.url, journal_url, log)
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
        assert node.returncode is None
        stored = await journaled(journal_url, conversations)
        for cid, conversation in stored.items():
            assert conversation is not None, cid
            users = [m.text for m in conversation.transcript if isinstance(m, UserMessage)]
            assert users == ["Hello 0", "Hello 1"], (cid, users)
    finally:
        await nc.close()
        if node.returncode is None:
            node.terminate()
        await asyncio.wait_for(node.wait(), 20)
