"""1,000 conversations at once through the HTTP edge: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from relaybaton.service import ServiceLimits
from tests.service._support import serving

pytestmark = pytest.mark.anyio

CONVERSATIONS = 1_000
MESSAGES = 2


async def test_a_thousand_concurrent_conversations_lose_and_duplicate_nothing() -> None:
    # One client principal sends everything here: lift its rate limit, keep the rest.
    limits = ServiceLimits(rate_per_s=1e6, burst=1_000_000)
    async with serving(limits=limits) as served:
        connector = aiohttp.TCPConnector(limit=CONVERSATIONS)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def converse(n: int) -> list[str]:
                url = f"{served.url}/v1/conversations/load-{n}/messages"
                texts = []
                for i in range(MESSAGES):
                    body = {"message_id": f"{n}-{i}", "text": f"msg {n}.{i}"}
                    answer = await http.post(url, json=body)
                    assert answer.status == 200, await answer.text()
                    texts.append((await answer.json())["replies"][0]["text"])
                # A redelivery of the first message: answered, not processed again.
                repeat = await http.post(url, json={"message_id": f"{n}-0", "text": "again"})
                texts.append((await repeat.json())["replies"][0]["text"])
                return texts

            results = await asyncio.gather(*(converse(n) for n in range(CONVERSATIONS)))
        for n, texts in enumerate(results):
            first, second = f"triage heard: msg {n}.0", f"triage heard: msg {n}.1"
            assert texts == [first, second, first]
        conversations = served.runtime.conversations
        assert conversations.turns_accepted == CONVERSATIONS * MESSAGES
        assert conversations.turns_finished == CONVERSATIONS * MESSAGES
        assert conversations.duplicates == CONVERSATIONS
        for n in range(CONVERSATIONS):
            conversation = served.runtime.conversation(f"load-{n}")
            assert conversation is not None
            users = [m for m in conversation.transcript if type(m).__name__ == "UserMessage"]
            assert [u.message_id for u in users] == [f"{n}-{i}" for i in range(MESSAGES)]  # type: ignore[attr-defined]
