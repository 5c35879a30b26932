"""`relaybaton serve --store`: a refund over the rule waits; a decision over HTTP resumes it."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relaybaton.cli._serve import serve
from relaybaton.flow import load_flow
from relaybaton.service import TokenTable
from tests._spelling import assert_event_spelling, assert_no_bare_id

pytestmark = pytest.mark.anyio

FLOW = Path(__file__).resolve().parents[1] / "integration" / "crash_flow" / "flow.toml"


async def _until_paused(session: aiohttp.ClientSession, url: str) -> None:
    async with session.get(f"{url}/v1/conversations/c1/events") as events:
        async for line in events.content:
            if b'"kind":"paused"' in line:
                return


async def test_an_approval_is_listed_and_decided_over_http_and_the_turn_finishes(
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
            watcher = asyncio.ensure_future(_until_paused(session, url))
            body = {"text": "I want a refund of $150 for order CD-5678", "message_id": "m1"}
            async with session.post(
                f"{url}/v1/conversations/c1/messages?wait=false", json=body
            ) as accepted:
                assert accepted.status == 202
            await asyncio.wait_for(watcher, 10)
            async with session.get(f"{url}/v1/approvals") as listed:
                [request] = (await listed.json())["data"]
            assert request["tool"] == "issue_refund"
            assert request["arguments"]["amount"] == 150
            assert (request["conversation_id"], request["agent"]) == ("c1", "refund")
            assert request["rule"]
            decision = {"decision": "approve", "reason": "checked the receipt"}
            async with session.post(
                f"{url}/v1/approvals/{request['approval_id']}", json=decision
            ) as r:
                assert r.status == 200, await r.text()
            async with session.post(
                f"{url}/v1/approvals/{request['approval_id']}", json=decision
            ) as r:
                # Single-use: a second decision is a conflict that says who decided what.
                assert r.status == 409
                message = (await r.json())["error"]["message"]
                assert "was decided already by person:loopback: approve" in message
            async with session.post(f"{url}/v1/conversations/c1/messages", json=body) as again:
                replies = (await again.json())["replies"]  # the same id: the one result
            assert "refunded $150.00" in replies[0]["text"]
    finally:
        stop.set()
        assert await asyncio.wait_for(server, 20) == 0
    effects = (tmp_path / "effects.jsonl").read_text().splitlines()
    assert len(effects) == 1


async def _events_until_reply(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """Every SSE event of c1 (data with the frame's event name) up to the turn's reply."""
    events: list[dict[str, Any]] = []
    name = ""
    async with session.get(f"{url}/v1/conversations/c1/events") as stream:
        async for raw in stream.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append({"event": name, **json.loads(line[6:])})
                if events[-1]["kind"] == "reply":
                    return events
    return events


async def test_every_service_event_and_view_spells_kind_and_names_its_ids(
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
            reader = asyncio.ensure_future(_events_until_reply(session, url))
            paused = asyncio.ensure_future(_until_paused(session, url))
            body = {"text": "I want a refund of $150 for order CD-5678", "message_id": "m1"}
            async with session.post(f"{url}/v1/conversations/c1/messages?wait=false", json=body):
                pass
            await asyncio.wait_for(paused, 10)
            async with session.get(f"{url}/v1/approvals") as listed:
                [request] = (await listed.json())["data"]
            assert_no_bare_id(request, "GET /v1/approvals")
            decision = {"decision": "approve"}
            async with session.post(f"{url}/v1/approvals/{request['approval_id']}", json=decision):
                pass
            events = await asyncio.wait_for(reader, 10)
            async with session.get(f"{url}/v1/conversations/c1") as got:
                view = await got.json()
            async with session.get(f"{url}/v1/conversations/c1/trace") as got:
                trace = await got.json()
    finally:
        stop.set()
        assert await asyncio.wait_for(server, 20) == 0
    kinds = assert_event_spelling(events, "SSE")
    assert {"approval_requested", "paused", "approval_decided", "reply"} <= set(kinds)
    assert all(e["event"] == e["kind"] for e in events)  # the SSE event name is the kind
    assert all(e["conversation_id"] == "c1" for e in events)
    assert_no_bare_id(view, "GET /v1/conversations/c1")
    assert view["conversation_id"] == "c1"
    assert_no_bare_id(trace, "GET /v1/conversations/c1/trace")
    assert trace["conversation_id"] == "c1"
    for span in trace["spans"]:
        assert "type" not in span
        assert_no_bare_id(span, "trace span")
