"""Real ``relaybaton serve --cluster`` processes, and what the tests read of them.

Starting a node (``start_node``), where the partitions' leases are (``holders``,
``wait_for_placement``, ``all_held_by``), a client that retries as one honouring
Retry-After would (``post_answered``), and, for producers' messages, the replies on an
inbox (``Replies``) and the journal as PostgreSQL holds it (``journaled``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError

from relaybaton.adapters import ChatMessage
from relaybaton.cluster import ReplyBody
from relaybaton.runtime import Journal, MonotonicClock
from relaybaton.stores._factory import open_store
from tests._nats import NATS_URL
from tests.cluster._node_ids import split_ids

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 8
# The ids of the nodes a test starts by these names: any of them live together each hold a
# share of the partitions (the tag keeps one run's ids apart from another's).
NODE_IDS = split_ids("a", "b", "c", partitions=PARTITIONS, tag=uuid.uuid4().hex[:6])
TTL = 2.0

Placement = Callable[[dict[int, str]], bool]

_reply = msgspec.json.Decoder(ReplyBody)


class Node:
    """A started ``serve`` process: its URL, its stderr's log, and its lease holder's id."""

    def __init__(
        self, process: asyncio.subprocess.Process, url: str, log: Path, node_id: str | None = None
    ) -> None:
        self.process = process
        self.url = url
        self.log = log
        # Its id, or the start of the id a node gives itself (host, pid, a random tag).
        self.id_prefix = node_id or f"{socket.gethostname()}-{process.pid}-"


def cluster_flow(tmp: Path, prefix: str) -> Path:
    """examples/customer_service.toml (with its tools) in ``tmp``, clustered on ``prefix``."""
    flow = tmp / "flow.toml"
    tools = ROOT / "examples" / "customer_service_tools.py"
    (tmp / tools.name).write_text(tools.read_text())
    flow.write_text(
        (ROOT / "examples" / "customer_service.toml").read_text()
        + f'\n[cluster]\npartitions = {PARTITIONS}\nlease_ttl_s = {TTL}\nprefix = "{prefix}"\n'
    )
    return flow


def _named(flow: Path, tmp: Path, name: str) -> tuple[Path, str | None]:
    """The node's own copy of ``flow`` whose ``[cluster]`` table (the last) names it, and its
    id; ``flow`` itself and None for a name or a flow without one."""
    node_id = NODE_IDS.get(name)
    text = flow.read_text()
    if node_id is None or not text.rsplit("\n[", 1)[-1].startswith("cluster]"):
        return flow, None
    named = tmp / f"{name}.flow.toml"
    named.write_text(f'{text}node_id = "{node_id}"\n')
    return named, node_id


async def start_node(
    flow: Path,
    database: str,
    tmp: Path,
    name: str,
    *,
    nats_url: str = NATS_URL,
    log_level: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Node:
    """``relaybaton serve --cluster`` on ``flow``, once its banner says it serves.

    Its stderr goes to ``tmp/<name>.log``; ``env`` is added to this process's environment
    (without ``RELAYBATON_API_TOKENS``, so the tests' requests need no token).
    """
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environment.pop("RELAYBATON_API_TOKENS", None)
    flow, node_id = _named(flow, tmp, name)
    verbosity = ["--log-level", log_level] if log_level is not None else []
    log = tmp / f"{name}.log"
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relaybaton", *verbosity, "serve", str(flow), "--port", "0",
            "--cluster", nats_url, "--store", database, "--drain-timeout", "5", "--no-console",
            stdout=asyncio.subprocess.PIPE, stderr=errors, env=environment,
        )  # fmt: skip
    assert process.stdout is not None
    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    except TimeoutError:
        process.kill()
        raise
    assert "serving flow" in banner, log.read_text()[-3000:]
    return Node(process, banner.rsplit(" ", 1)[-1].strip(), log, node_id)


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


async def wait_for_placement(prefix: str, done: Placement, within: float) -> float:
    """Seconds until the leases under ``prefix`` are placed as ``done`` wants."""
    started = time.monotonic()
    while True:
        held = await holders(prefix)
        if done(held):
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"placement not reached: {held}"
        await asyncio.sleep(0.05)


def all_held_by(*nodes: Node) -> Placement:
    """Every partition held, and each of ``nodes`` holding some (no other node any)."""

    def check(held: dict[int, str]) -> bool:
        owners = {
            next((n for n in nodes if v.startswith(n.id_prefix)), None) for v in held.values()
        }
        return len(held) == PARTITIONS and owners == set(nodes)

    return check


async def post_answered(http: aiohttp.ClientSession, url: str, text: str) -> dict[str, object]:
    """POST a message, retrying on 503 as a client honouring Retry-After would (5 s)."""
    deadline = time.monotonic() + 5
    while True:
        async with http.post(url, json={"text": text, "message_id": text}) as answer:
            if answer.status != 503 or time.monotonic() > deadline:
                assert answer.status == 200, await answer.text()
                return await answer.json()  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)


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


async def journaled(url: str, conversation_ids: list[str]) -> dict[str, Any]:
    """Each conversation as its journal holds it (read from PostgreSQL, no node involved)."""
    async with open_store(url) as store:
        journal: Journal[Any] = Journal(store, ChatMessage, clock=MonotonicClock())
        found = {}
        for cid in conversation_ids:
            found[cid] = await journal.load(cid, entry="")
        return found
