"""Two real ``relaybaton serve --cluster`` processes: a client that talks to node A only is
answered for conversations node B owns (messages, reads, the event stream, the OpenAI
endpoint streamed), because A forwards them to B over NATS."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import openai
import pytest

from relaybaton.cluster import partition_of
from tests.cluster._serve import (
    PARTITIONS,
    all_held_by,
    cluster_flow,
    holders,
    post_answered,
    start_node,
    wait_for_placement,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.timeout(90)]


def _on(held: dict[int, str], id_prefix: str, stem: str) -> str:
    return next(
        f"{stem}-{i}"
        for i in range(10_000)
        if held.get(partition_of(f"{stem}-{i}", PARTITIONS), "").startswith(id_prefix)
    )


async def test_a_client_of_one_node_is_answered_for_the_conversations_another_owns(
    tmp_path: Path, database_url: str, prefix: str
) -> None:
    flow = cluster_flow(tmp_path, prefix)
    a = await start_node(flow, database_url, tmp_path, "a")
    b = await start_node(flow, database_url, tmp_path, "b")
    try:
        await wait_for_placement(prefix, all_held_by(a, b), within=30)
        held = await holders(prefix)
        conversation = _on(held, b.id_prefix, "conv")
        chat = _on(held, b.id_prefix, "chat")
        async with aiohttp.ClientSession() as http:
            # Node A alone: its runtime would refuse B's conversation (503 partition_moved),
            # so each 200 below is B's answer, relayed.
            base = f"{a.url}/v1/conversations/{conversation}"
            async with http.get(f"{base}/events") as stream:
                assert stream.status == 200
                assert await stream.content.readline() == b"retry: 1000\n"
                answered = await post_answered(http, f"{base}/messages", "Hello")
                assert answered["replies"], answered
                kinds: list[str] = []
                async for line in stream.content:
                    if line.startswith(b"data: "):
                        kinds.append(json.loads(line[6:])["kind"])
                        if kinds[-1] == "reply":
                            break
            assert kinds[-1:] == ["reply"], kinds  # the turn, as B streamed it, through A
            async with http.get(base) as read:
                assert read.status == 200
                transcript = (await read.json())["transcript"]
            assert [t["text"] for t in transcript if t.get("type") == "user"] == ["Hello"]

            # An approval in B's conversation: listed by A (from the shared store), decided
            # through A, and the turn finishes on B.
            refund = _on(held, b.id_prefix, "refund")
            ask = {"text": "I want a refund of $150 for order CD-5678", "message_id": "r1"}
            url = f"{a.url}/v1/conversations/{refund}/messages"
            async with http.post(url, json=ask) as waiting:
                assert waiting.status == 202, await waiting.text()  # a person decides
            async with http.get(f"{a.url}/v1/approvals") as listed:
                [request] = (await listed.json())["data"]
            assert request["conversation_id"] == refund
            decision = {"decision": "approve", "reason": "checked"}
            async with http.post(
                f"{a.url}/v1/approvals/{request['approval_id']}", json=decision
            ) as decided:
                assert decided.status == 200, await decided.text()
            async with http.post(url, json=ask) as done:  # the same message: its result
                replies = (await done.json())["replies"]
            assert "refunded $150.00" in replies[-1]["text"], replies
        async with openai.AsyncOpenAI(
            base_url=f"{a.url}/v1", api_key="unused", max_retries=3
        ) as client:
            stream = await client.chat.completions.create(
                model="customer_service",
                messages=[{"role": "user", "content": "What is my balance?"}],
                stream=True,
                extra_headers={"X-Relaybaton-Conversation-Id": chat},
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text.strip()
        # B owns both conversations still: nothing moved while A answered for them.
        assert (await holders(prefix)) == held
    finally:
        for node in (a, b):
            if node.process.returncode is None:
                node.process.kill()
            await node.process.wait()
    assert "Traceback" not in a.log.read_text()
