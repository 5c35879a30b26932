"""What publishing producers' turns' events on NATS costs the producers' path.

One node's runtime (journal on PostgreSQL, sync durability, a scripted model that calls one
tool and then answers: four events a turn) consumes every partition of a fresh prefix.
Each round publishes ``--conversations`` x ``--messages`` user messages at once and times
until every reply is in; rounds alternate events on and off (a fresh runtime and consumers
each round, the same journal schema), and the medians of ``--repeat`` rounds of each are
reported as messages per second, with the ratio on / off.

Needs NATS with JetStream on 127.0.0.1:4222 and PostgreSQL on 127.0.0.1:5432 (database
``test``). Run: ``python benchmarks/nats_events.py`` (``--json`` for one JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
import zlib
from typing import Any

import msgspec
import nats
import psycopg
from nats.aio.client import Client

from relaybaton import Agent, function_tool, open_runtime
from relaybaton.adapters import ModelRequest, ToolResultMessage
from relaybaton.cluster._partitions import OwnershipListener
from relaybaton.cluster._producers import start_consumers
from relaybaton.cluster._subjects import ProducerSubjects
from relaybaton.stores import PostgresStore
from relaybaton.testing import ScriptedModel, tool_call

NATS_URL = "nats://127.0.0.1:4222"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PARTITIONS = 8


class AllPartitions:
    """An ``Ownership`` that holds every partition (one node alone)."""

    node_id = "bench"
    partitions = PARTITIONS

    def __init__(self) -> None:
        self.started: list[asyncio.Future[None]] = []

    def generation(self, partition: int) -> int | None:
        return 1

    def owner_of(self, partition: int) -> str | None:
        return self.node_id

    def listen(self, listener: OwnershipListener) -> None:
        self.started = [asyncio.ensure_future(listener(p, 1)) for p in range(PARTITIONS)]


@function_tool
def lookup(order_id: str) -> str:
    """Look an order up.

    Args:
        order_id: the order.
    """
    return f"order {order_id}: delivered"


def script(request: ModelRequest) -> Any:
    if isinstance(request.messages[-1], ToolResultMessage):
        return "Your order was delivered."
    return tool_call("lookup", order_id="AB-1")


async def one_round(
    nc: Client, schema: str, prefix: str, args: Any, events: bool
) -> tuple[float, int]:
    """Messages per second of one round, and the events it published."""
    subjects = ProducerSubjects(prefix)
    store = PostgresStore(PG_DSN, schema=schema, application_name="bench-events")
    await store.connect()
    try:
        agent = Agent(name="clerk", instructions="Answer.", model="general", tools=(lookup,))
        async with (
            open_runtime(
                agent, models=ScriptedModel(script, keep_requests=False), store=store,
                durability="sync",
            ) as runtime,
            start_consumers(
                nc, runtime, AllPartitions(), subjects=subjects, events=events
            ) as consumers,
        ):  # fmt: skip
            done = asyncio.Event()
            expected = args.conversations * args.messages
            got: set[str] = set()
            inbox = nc.new_inbox()

            async def take(msg: Any) -> None:
                got.add(msgspec.json.decode(msg.data)["message_id"])
                if len(got) == expected:
                    done.set()

            sub = await nc.subscribe(inbox, cb=take)
            js = nc.jetstream()
            run = uuid.uuid4().hex[:6]
            started = time.perf_counter()
            for m in range(args.messages):
                for c in range(args.conversations):
                    cid = f"{run}-c{c}"
                    mid = f"{cid}-m{m}"
                    body = {"conversation_id": cid, "message_id": mid, "text": "Where is AB-1?"}
                    partition = zlib.crc32(cid.encode()) % PARTITIONS
                    await js.publish(
                        subjects.partition(partition),
                        msgspec.json.encode(body),
                        headers={"Nats-Msg-Id": mid, "Relaybaton-Reply-To": inbox},
                    )
            await asyncio.wait_for(done.wait(), 120)
            took = time.perf_counter() - started
            await sub.unsubscribe()
            return expected / took, consumers.counters.events
    finally:
        await store.aclose()


async def main(args: Any) -> dict[str, Any]:
    schema = f"bench_events_{uuid.uuid4().hex[:8]}"
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(NATS_URL)
    rates: dict[bool, list[float]] = {True: [], False: []}
    published = 0
    try:
        await one_round(nc, schema, prefix, args, events=False)  # warm-up: schema, streams
        for _ in range(args.repeat):
            for events in (False, True):
                rate, count = await one_round(nc, schema, prefix, args, events)
                rates[events].append(rate)
                published += count
    finally:
        js = nc.jetstream()
        for info in await js.streams_info():
            if prefix.upper() in (info.config.name or ""):
                await js.delete_stream(info.config.name or "")
        await nc.close()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    return {
        "messages_per_round": args.conversations * args.messages,
        "events_per_turn": 4,
        "events_published": published,
        "off_msgs_per_s": round(off, 1),
        "on_msgs_per_s": round(on, 1),
        "ratio_on_off": round(on / off, 3),
        "rounds": args.repeat,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=64)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parsed = parser.parse_args()
    result = asyncio.run(main(parsed))
    if parsed.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
