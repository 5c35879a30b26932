"""A turn that waits for a person answers the client at once, and SIGTERM does not wait for it.

The customer asks for a refund over the approval rule: the waiting POST, and the
OpenAI-compatible endpoint, answer at once that the request waits for review (with the
conversation and approval ids) instead of holding the request open; a stop drains without
waiting for the paused conversations and exits 0; the journal keeps them for the decision.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import aiohttp
import pytest

from relaybaton.cli._serve import serve
from relaybaton.flow import load_flow
from relaybaton.service import TokenTable

pytestmark = pytest.mark.anyio

FLOW = Path(__file__).resolve().parents[1] / "integration" / "crash_flow" / "flow.toml"
REFUND = "I want a refund of $150 for order CD-5678"


async def test_a_paused_turn_answers_at_once_and_sigterm_drains_without_waiting_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBATON_TEST_EFFECTS", str(tmp_path / "effects.jsonl"))
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server = asyncio.ensure_future(
        serve(
            load_flow(FLOW),
            port=0,
            tokens=TokenTable(),
            stop=stop,
            on_ready=ready.set_result,
            store_path=str(tmp_path / "journal.db"),
            durability="sync",
            out=io.StringIO(),
        )
    )
    try:
        url = await asyncio.wait_for(ready, 10)
        async with aiohttp.ClientSession() as session:
            async with asyncio.timeout(10):  # not the 300 s wait_timeout_s
                async with session.post(
                    f"{url}/v1/conversations/c1/messages", json={"text": REFUND}
                ) as native:
                    assert native.status == 202
                    body = await native.json()
            assert body["status"] == "awaiting_approval"
            [approval_id] = body["approval_ids"]
            [reply] = body["replies"]
            assert reply["text"] == (
                "Your request is waiting for review by a person before I can issue the refund "
                f"(conversation c1, approval {approval_id}). I'll continue as soon as they decide."
            )
            chat = {"model": "flow", "messages": [{"role": "user", "content": REFUND}]}
            async with asyncio.timeout(10):
                async with session.post(
                    f"{url}/v1/chat/completions",
                    json=chat,
                    headers={"X-Relaybaton-Conversation-Id": "c2"},
                ) as compat:
                    assert compat.status == 200, await compat.text()
                    completion = await compat.json()
            content = completion["choices"][0]["message"]["content"]
            assert content.startswith("Your request is waiting for review by a person")
            assert "conversation c2, approval ap-" in content
            streamed = ""
            async with asyncio.timeout(10):
                async with session.post(
                    f"{url}/v1/chat/completions",
                    json={**chat, "stream": True},
                    headers={"X-Relaybaton-Conversation-Id": "c3"},
                ) as stream:
                    async for raw in stream.content:
                        line = raw.decode().strip()
                        if line == "data: [DONE]":
                            break
                        if line.startswith("data: "):
                            for choice in json.loads(line[6:]).get("choices", []):
                                streamed += choice["delta"].get("content") or ""
            assert "waiting for review by a person" in streamed
            assert "conversation c3, approval ap-" in streamed
    finally:
        stop.set()
        # Both conversations wait for a person: the drain has no turn in flight to wait for.
        assert await asyncio.wait_for(server, 10) == 0
    assert not (tmp_path / "effects.jsonl").exists()  # nothing paid without a decision
