"""Two real ``relaybaton serve --cluster`` processes on one NATS and one PostgreSQL.

They split the partitions; a conversation is answered by its owner, and by the other node
through its owner; SIGTERM hands a node's partitions over within about a second;
SIGKILL within the lease TTL and a second.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import nats
import psycopg
import pytest
from nats.js.errors import KeyNotFoundError

from relaybaton.cluster import partition_of
from tests._nats import NATS_URL, delete_prefix, require_nats, throwaway_prefix
from tests._postgres import PG_DSN, require_postgres

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 8
TTL = 2.0


@pytest.fixture
async def database() -> AsyncIterator[str]:
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
async def prefix() -> AsyncIterator[str]:
    require_nats()
    name = throwaway_prefix()
    try:
        yield name
    finally:
        await delete_prefix(name)


class Node:
    def __init__(self, process: asyncio.subprocess.Process, url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log
        self.id_prefix = f"{socket.gethostname()}-{process.pid}-"


async def start_process(
    flow: Path, database: str, errors: object, env: dict[str, str]
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relaybaton", "serve", str(flow), "--port", "0",
        "--cluster", NATS_URL, "--store", database, "--drain-timeout", "5", "--no-console",
        stdout=asyncio.subprocess.PIPE,
        stderr=errors,  # type: ignore[arg-type]
        env=env,
    )  # fmt: skip


async def start_node(flow: Path, database: str, tmp: Path, name: str) -> Node:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RELAYBATON_API_TOKENS", None)
    log = tmp / f"{name}.log"
    with log.open("wb") as errors:
        process = await start_process(flow, database, errors, env)
    assert process.stdout is not None
    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    except TimeoutError:
        process.kill()
        raise
    assert "serving flow" in banner, log.read_text()[-3000:]
    return Node(process, banner.rsplit(" ", 1)[-1].strip(), log)


async def holders(prefix: str) -> dict[int, str]:
    """Each partition's lease holder, read from the KV bucket itself."""
    nc = await nats.connect(NATS_URL)
    try:
        kv = await nc.jetstream().key_value(f"{prefix}_leases")
        found: dict[int, str] = {}
        for p in range(PARTITIONS):
            try:
                entry = await kv.get(f"p.{p}")
            except KeyNotFoundError:  # absent, deleted (a subclass) or expired: not held
                continue
            if entry.value:
                found[p] = entry.value.decode()
        return found
    finally:
        await nc.close()


async def wait_for(prefix: str, done: object, within: float) -> float:
    started = time.monotonic()
    while True:
        held = await holders(prefix)
        if done(held):  # type: ignore[operator]
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"placement not reached: {held}"
        await asyncio.sleep(0.05)


async def post_answered(http: aiohttp.ClientSession, url: str, text: str) -> dict[str, object]:
    """POST a message, retrying on 503 as a client honouring Retry-After would (5 s)."""
    deadline = time.monotonic() + 5
    while True:
        async with http.post(url, json={"text": text, "message_id": text}) as answer:
            if answer.status != 503 or time.monotonic() > deadline:
                assert answer.status == 200, await answer.text()
                return await answer.json()  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)


def all_held_by(*nodes: Node) -> object:
    def check(held: dict[int, str]) -> bool:
        owners = {
            next((n for n in nodes if v.startswith(n.id_prefix)), None) for v in held.values()
        }
        return len(held) == PARTITIONS and owners == set(nodes)

    return check


async def test_two_nodes_split_hand_over_on_sigterm_and_take_over_after_sigkill(
    tmp_path: Path, database: str, prefix: str
) -> None:
    flow = tmp_path / "flow.toml"
    tools = ROOT / "examples" / "customer_service_tools.py"
    (tmp_path / tools.name).write_text(tools.read_text())
    flow.write_text(
        (ROOT / "examples" / "customer_service.toml").read_text()
        + f'\n[cluster]\npartitions = {PARTITIONS}\nlease_ttl_s = {TTL}\nprefix = "{prefix}"\n'
    )
    a = await start_node(flow, database, tmp_path, "a")
    b = await start_node(flow, database, tmp_path, "b")
    try:
        await wait_for(prefix, all_held_by(a, b), within=10)
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
            took = await wait_for(prefix, all_held_by(a), within=5)
            assert took < 1.5, f"graceful hand-over took {took:.2f} s"
            assert await asyncio.wait_for(b.process.wait(), 10) == 0
            # The conversation continues on its new owner, from the shared journal.
            assert (await post_answered(http, a.url + path, "Hello again"))["replies"]
            async with http.get(a.url + f"/v1/conversations/{conversation}") as read:
                transcript = (await read.json())["transcript"]
            # Both messages, each once: the new owner continued the journaled conversation.
            users = [item["text"] for item in transcript if item.get("type") == "user"]
            assert users == ["Hello", "Hello again"]

            c = await start_node(flow, database, tmp_path, "c")
            try:
                await wait_for(prefix, all_held_by(a, c), within=10)
                c.process.kill()
                killed = time.monotonic()
                await wait_for(prefix, all_held_by(a), within=TTL + 5)
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
