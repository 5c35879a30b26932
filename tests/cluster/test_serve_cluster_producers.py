"""Producers' messages through real ``relaybaton serve --cluster`` processes.

Two nodes serve examples/customer_service.toml; messages are published as the README's
producer does (``Nats-Msg-Id``, ``Relaybaton-Reply-To``); one node is stopped with SIGTERM
while messages are in flight. Every message is then in the journal once, in order, and
answered on the producer's inbox.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
import psycopg
import pytest
from nats.aio.msg import Msg

from relaybaton.adapters import ChatMessage, UserMessage
from relaybaton.cluster import REPLY_TO_HEADER, ReplyBody, partition_of
from relaybaton.runtime import Journal, MonotonicClock
from relaybaton.stores._factory import open_store
from tests._nats import NATS_URL, delete_prefix, require_nats, throwaway_prefix
from tests._postgres import PG_DSN, require_postgres
from tests.cluster.test_serve_cluster import (
    PARTITIONS,
    TTL,
    Node,
    all_held_by,
    start_node,
    wait_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
_reply = msgspec.json.Decoder(ReplyBody)


@pytest.fixture
async def journal_url() -> AsyncIterator[str]:
    """A throwaway database (the CLI's journal uses a fixed schema name)."""
    require_postgres()
    name = f"rbt_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_DSN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def cluster_prefix() -> AsyncIterator[str]:
    require_nats()
    name = throwaway_prefix()
    try:
        yield name
    finally:
        await delete_prefix(name)  # the KV buckets
        await delete_prefix(name.upper())  # the streams


def cluster_flow(tmp: Path, prefix: str) -> Path:
    flow = tmp / "flow.toml"
    tools = ROOT / "examples" / "customer_service_tools.py"
    (tmp / tools.name).write_text(tools.read_text())
    flow.write_text(
        (ROOT / "examples" / "customer_service.toml").read_text()
        + f'\n[cluster]\npartitions = {PARTITIONS}\nlease_ttl_s = {TTL}\nprefix = "{prefix}"\n'
    )
    return flow


class Replies:
    """Every reply on the producer's inbox, by message id, and a wait for a set of ids."""

    def __init__(self) -> None:
        self.by_id: dict[str, list[ReplyBody]] = {}
        self.changed = asyncio.Event()

    async def take(self, msg: Msg) -> None:
        reply = _reply.decode(msg.data)
        self.by_id.setdefault(reply.message_id, []).append(reply)
        self.changed.set()

    async def wait_for(self, ids: set[str], within: float) -> None:
        deadline = time.monotonic() + within
        while not ids <= {m for m, r in self.by_id.items() if _final(r)}:
            missing = ids - self.by_id.keys()
            assert time.monotonic() < deadline, f"no reply to {sorted(missing)[:5]}"
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())
            except TimeoutError:
                continue


def _final(replies: list[ReplyBody]) -> bool:
    return any(r.status != "awaiting_approval" for r in replies)


async def accepted_on(node: Node, http: aiohttp.ClientSession) -> float:
    """What the node's metrics endpoint says it accepted from NATS."""
    async with http.get(node.url + "/metrics") as answer:
        text = await answer.text()
    line = next(x for x in text.splitlines() if x.startswith("relaybaton_nats_messages_accepted"))
    return float(line.rsplit(" ", 1)[1])


async def journaled(url: str, conversation_ids: list[str]) -> dict[str, Any]:
    """Each conversation as its journal holds it (read from PostgreSQL, no node involved)."""
    async with open_store(url) as store:
        journal: Journal[Any] = Journal(store, ChatMessage, clock=MonotonicClock())
        found = {}
        for cid in conversation_ids:
            found[cid] = await journal.load(cid, entry="")
        return found


async def test_producers_messages_are_processed_once_across_a_sigterm(
    tmp_path: Path, journal_url: str, cluster_prefix: str
) -> None:
    flow = cluster_flow(tmp_path, cluster_prefix)
    a = await start_node(flow, journal_url, tmp_path, "a")
    b = await start_node(flow, journal_url, tmp_path, "b")
    nc = await nats.connect(NATS_URL)
    try:
        await wait_for(cluster_prefix, all_held_by(a, b), within=10)
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
                    f"{cluster_prefix}.in.{partition_of(cid, PARTITIONS)}",
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

        info = await js.stream_info(f"{cluster_prefix.upper()}_IN")
        assert info.state.messages == 0  # every message acked
        for mid, got in replies.by_id.items():
            assert all(r.status == "replied" for r in got), (mid, got)
        stored = await journaled(journal_url, conversations)
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
