"""A producer's reply survives the crash of the node that acked its message.

A real ``relaybaton serve --cluster`` node accepts and acks two producers' messages, then
is SIGKILLed while their turns wait in a slow tool. A second node takes the partitions
over, finishes the turns from the journal and publishes their replies: one on the inbox the
producer named in ``Relaybaton-Reply-To``, one on the conversation's out subject; and, with
``[cluster] events = true``, the turns' events on ``<prefix>.events.<conversation_id>``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.msg import Msg

from relaybaton.adapters import UserMessage
from relaybaton.cluster import REPLY_TO_HEADER, ReplyBody, partition_of
from tests._nats import NATS_URL, wait_until
from tests.cluster._serve import (
    PARTITIONS,
    TTL,
    Node,
    Replies,
    all_held_by,
    journaled,
    start_node,
    wait_for_placement,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

# A tool that, in a node started with SLOW_TOOL_DIR, leaves a file named after its call and
# then waits for an hour: the turn is under way (its message acked) when the node is killed.
SLOW_TOOLS = '''
import asyncio, os, pathlib
from relaybaton.actors import ToolContext

async def lookup_invoice(customer_question: str, context: ToolContext) -> dict[str, object]:
    """Look up the customer's latest invoice.

    Args:
        customer_question: what the customer asked about the invoice.
    """
    where = os.environ.get("SLOW_TOOL_DIR")
    if where:
        pathlib.Path(where, context.conversation_id).touch()
        await asyncio.sleep(3600)
    return {"invoice": "INV-7", "total": 19.0}
'''


def slow_flow(tmp: Path, prefix: str) -> Path:
    (tmp / "slow_tools.py").write_text(SLOW_TOOLS)
    flow = tmp / "slow.toml"
    flow.write_text(
        f"""
[flow]
name = "slow_invoices"
entry = "clerk"

[models.general]
model = "simulated:general"
latency_ms = 1

[tools.lookup_invoice]
function = "slow_tools.py:lookup_invoice"

[[agents]]
name = "clerk"
model = "general"
description = "Answers questions about invoices."
instructions = "You look up the customer's invoice and explain it."
tools = ["lookup_invoice"]

[cluster]
partitions = {PARTITIONS}
lease_ttl_s = {TTL}
prefix = "{prefix}"
events = true
"""
    )
    return flow


async def test_replies_of_turns_acked_before_a_sigkill_come_from_the_next_owner(
    tmp_path: Path,
    database_url: str,
    prefix: str,
) -> None:
    flow = slow_flow(tmp_path, prefix)
    started = tmp_path / "started"
    started.mkdir()
    a = await start_node(flow, database_url, tmp_path, "a", env={"SLOW_TOOL_DIR": str(started)})
    b: Node | None = None
    nc = await nats.connect(NATS_URL)
    try:
        await wait_for_placement(prefix, all_held_by(a), within=30)
        js = nc.jetstream()
        inbox_replies, out_replies = Replies(), Replies()
        inbox = nc.new_inbox()
        await nc.subscribe(inbox, cb=inbox_replies.take)
        await nc.subscribe(f"{prefix}.out.inv-2", cb=out_replies.take)
        events: list[dict[str, object]] = []

        async def take_event(msg: Msg) -> None:
            events.append(msgspec.json.decode(msg.data))

        await nc.subscribe(f"{prefix}.events.inv-1", cb=take_event)
        for cid, headers in (("inv-1", {REPLY_TO_HEADER: inbox}), ("inv-2", {})):
            mid = f"{cid}.m0"
            body = {"conversation_id": cid, "message_id": mid, "text": "Explain my invoice"}
            await js.publish(
                f"{prefix}.in.{partition_of(cid, PARTITIONS)}",
                msgspec.json.encode(body),
                headers={"Nats-Msg-Id": mid, **headers},
            )
        # Both turns wait in the tool, and both messages are acked (gone from the work
        # queue): only the journal knows of them now.
        await wait_until(lambda: len(list(started.iterdir())) == 2, within=15)
        stream = f"{prefix.upper()}_IN"
        deadline = time.monotonic() + 30
        while (await js.stream_info(stream)).state.messages:
            assert time.monotonic() < deadline, "the node never acked the messages"
            await asyncio.sleep(0.05)
        assert not inbox_replies.by_id
        assert not out_replies.by_id

        a.process.kill()
        await a.process.wait()
        b = await start_node(flow, database_url, tmp_path, "b")
        await inbox_replies.wait_for({"inv-1.m0"}, within=TTL + 15)
        await out_replies.wait_for({"inv-2.m0"}, within=30)
        # The events of the turn as the new owner finished it (published once journaled).
        await wait_until(lambda: any(e["kind"] == "reply" for e in events), within=30)
        assert {e["message_id"] for e in events} == {"inv-1.m0"}
        kinds = [e["kind"] for e in events]
        # B's model call and the reply (before them, A's first model call if A published it
        # between its journal commit and the kill).
        assert kinds[-2:] == ["model_call", "reply"], kinds
        assert kinds.count("reply") == 1, kinds
        for replies, mid in ((inbox_replies, "inv-1.m0"), (out_replies, "inv-2.m0")):
            final = [r for r in replies.by_id[mid] if r.status != "awaiting_approval"]
            assert all(r.status == "replied" for r in final), final
            assert all(isinstance(r, ReplyBody) and r.text for r in final), final
            assert final[0].conversation_id == mid.split(".")[0]
        stored = await journaled(database_url, ["inv-1", "inv-2"])
        for cid, conversation in stored.items():
            assert conversation is not None, cid
            users = [m.text for m in conversation.transcript if isinstance(m, UserMessage)]
            assert users == ["Explain my invoice"], (cid, users)
    finally:
        await nc.close()
        for node in (a, b):
            if node is not None:
                if node.process.returncode is None:
                    node.process.kill()
                await node.process.wait()
