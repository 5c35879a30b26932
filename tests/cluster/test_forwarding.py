"""Ingress on every node: a request through the node that does not own the conversation is
answered by the node that does, over a real NATS (two in-process services, a fixed split)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from relaybaton.actors import Runtime, open_runtime
from relaybaton.adapters import ModelRequest, ModelResponse
from relaybaton.cli._conversations import open_store_path
from relaybaton.cluster._forwarder import approvals_in
from relaybaton.cluster._partitions import partition_of
from relaybaton.cluster._tunnel_wire import MAX_CHUNK, rpc_subject
from relaybaton.flow import load_flow
from relaybaton.flow._compose import open_flow
from relaybaton.runtime import Store
from relaybaton.service import ServiceLimits, TokenTable
from relaybaton.service._approval_desk import RuntimeApprovals
from relaybaton.service._auth import ApiToken
from relaybaton.service._server import ApprovalDesk
from relaybaton.testing import ScriptedModel
from tests.cluster._forwarding_nodes import conversation_on, two_nodes
from tests.service._support import FLOW, _answer, agents

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.timeout(60)]

CRASH_FLOW = Path(__file__).resolve().parents[1] / "integration" / "crash_flow" / "flow.toml"


class _Calls(ScriptedModel):
    """The scripted model, telling when a call arrives (before its gate holds it)."""

    called: asyncio.Event

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.called.set()
        return await super().complete(request)


def scripted(
    gates: dict[str, asyncio.Event] | None = None, called: dict[str, asyncio.Event] | None = None
) -> Any:
    """Nodes on the service tests' scripted flow; a node's gate holds its model calls."""

    async def make(name: str, stack: AsyncExitStack) -> tuple[Runtime, ApprovalDesk | None]:
        gate = (gates or {}).get(name)
        model = _Calls(_answer, name="scripted:general", gate=gate, keep_requests=False)
        model.called = (called or {}).get(name) or asyncio.Event()
        triage, billing = agents()
        runtime = await stack.enter_async_context(
            open_runtime(triage, agents=[billing], models=model, tracing=False)
        )
        return runtime, None

    return make


async def _sse_until_reply(response: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async for line in response.content:
        if line.startswith(b"data: "):
            events.append(json.loads(line[6:]))
            if events[-1].get("kind") == "reply":
                return events
    return events


async def test_a_message_and_the_conversation_answer_through_the_node_that_does_not_own_it(
    prefix: str,
) -> None:
    async with two_nodes(prefix, scripted(), flow_name=FLOW) as (a, b, split):
        cid = conversation_on(split, "b")
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{a.url}/v1/conversations/{cid}/messages", json={"text": "hello"}
            ) as posted:
                assert posted.status == 200, await posted.text()
                answer = await posted.json()
            async with session.get(f"{a.url}/v1/conversations/{cid}") as got:
                assert got.status == 200
                view = await got.json()
            # The same request to the owner answers the same (it is where it lives).
            async with session.get(f"{b.url}/v1/conversations/{cid}") as direct:
                assert await direct.json() == view
        assert answer["replies"][0]["text"] == "triage heard: hello"
        assert [m["text"] for m in view["transcript"] if m["type"] == "user"] == ["hello"]
        assert b.runtime.conversation(cid) is not None
        assert a.runtime.conversation(cid) is None  # nothing ran on the ingress


async def test_an_unknown_conversation_is_a_404_from_its_owner_in_the_services_shape(
    prefix: str,
) -> None:
    async with two_nodes(prefix, scripted(), flow_name=FLOW) as (a, _b, split):
        cid = conversation_on(split, "b", stem="nobody")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{a.url}/v1/conversations/{cid}") as got,
        ):
            assert got.status == 404
            assert (await got.json())["error"]["code"] == "conversation_not_found"


async def test_events_stream_through_the_non_owner_as_the_owner_writes_them(prefix: str) -> None:
    async with two_nodes(prefix, scripted(), flow_name=FLOW) as (a, _b, split):
        cid = conversation_on(split, "b")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{a.url}/v1/conversations/{cid}/events") as stream,
        ):
            assert stream.status == 200
            assert stream.headers["Content-Type"] == "text/event-stream"
            assert await stream.content.readline() == b"retry: 1000\n"
            reading = asyncio.ensure_future(_sse_until_reply(stream))
            async with session.post(
                f"{a.url}/v1/conversations/{cid}/messages?wait=false",
                json={"text": "billing: how much?"},
            ) as posted:
                assert posted.status == 202
            events = await asyncio.wait_for(reading, 10)
        kinds = [e["kind"] for e in events]
        assert "handoff" in kinds
        assert events[-1]["kind"] == "reply"
        assert events[-1]["text"] == "billing heard: billing: how much?"


async def test_the_openai_client_through_the_non_owner_streamed_and_not(prefix: str) -> None:
    async with two_nodes(prefix, scripted(), flow_name=FLOW) as (a, b, split):
        user = conversation_on(split, "b", stem="user")
        streamed_id = conversation_on(split, "b", stem="stream")
        async with openai.AsyncOpenAI(
            base_url=f"{a.url}/v1", api_key="unused", max_retries=0
        ) as client:
            whole = await client.chat.completions.create(
                model=FLOW, messages=[{"role": "user", "content": "hello"}], user=user
            )
            stream = await client.chat.completions.create(
                model=FLOW,
                messages=[{"role": "user", "content": "billing: stream me"}],
                stream=True,
                stream_options={"include_usage": True},
                extra_headers={"X-Relaybaton-Conversation-Id": streamed_id},
            )
            chunks = [chunk async for chunk in stream]
        assert whole.choices[0].message.content == "triage heard: hello"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.strip() == "billing heard: billing: stream me"
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
        assert chunks[-1].usage is not None
        for cid in (user, streamed_id):
            assert b.runtime.conversation(cid) is not None
            assert a.runtime.conversation(cid) is None


async def test_a_chat_that_names_no_conversation_starts_one_on_the_node_it_reached(
    prefix: str,
) -> None:
    async with two_nodes(prefix, scripted(), flow_name=FLOW) as (a, b, split):
        async with openai.AsyncOpenAI(
            base_url=f"{a.url}/v1", api_key="unused", max_retries=0
        ) as client:
            for _ in range(4):
                whole = await client.chat.completions.create(
                    model=FLOW, messages=[{"role": "user", "content": "hi"}]
                )
                assert whole.choices[0].message.content == "triage heard: hi"
        started = list(a.runtime.conversations.by_id)
        assert len(started) == 4
        assert all(split.owners[partition_of(c, split.partitions)] == "a" for c in started)
        assert not b.runtime.conversations.by_id


async def _durable(
    tmp_path: Path, stores: dict[str, Store]
) -> Any:  # nodes on the crash tests' flow, each journaling to its own SQLite file
    flow = load_flow(CRASH_FLOW)

    async def make(name: str, stack: AsyncExitStack) -> tuple[Runtime, ApprovalDesk | None]:
        store = await stack.enter_async_context(
            open_store_path(str(tmp_path / f"{name}.db"), "sync")
        )
        stores[name] = store
        runtime = await stack.enter_async_context(
            open_flow(flow, tracing=False, store=store, durability="sync")
        )
        return runtime, RuntimeApprovals(runtime)

    return make


async def test_an_approval_is_decided_through_the_node_that_does_not_own_its_conversation(
    prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBATON_TEST_EFFECTS", str(tmp_path / "effects.jsonl"))
    stores: dict[str, Store] = {}

    # In a cluster every node reads one shared store; here each has its own file, so the
    # locator looks in both, with the function a node uses on the shared one.
    async def locate(approval_id: str) -> str | None:
        for store in stores.values():
            found = await approvals_in(store)(approval_id)
            if found is not None:
                return found
        return None

    make = await _durable(tmp_path, stores)
    async with two_nodes(prefix, make, flow_name="crash", locate_approval=locate) as (a, b, split):
        cid = conversation_on(split, "b")
        body = {"text": "I want a refund of $150 for order CD-5678", "message_id": "m1"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{a.url}/v1/conversations/{cid}/events") as stream:
                async with session.post(
                    f"{a.url}/v1/conversations/{cid}/messages?wait=false", json=body
                ) as accepted:
                    assert accepted.status == 202
                async for line in stream.content:
                    if b'"kind":"paused"' in line:
                        break
            async with session.get(f"{b.url}/v1/approvals") as listed:
                [request] = (await listed.json())["data"]
            assert request["conversation_id"] == cid
            decision = {"decision": "approve", "reason": "checked the receipt"}
            target = f"{a.url}/v1/approvals/{request['approval_id']}"
            async with session.post(target, json=decision) as decided:
                assert decided.status == 200, await decided.text()
            async with session.post(target, json=decision) as again:
                assert again.status == 409  # the owner's answer: decided already
            async with session.post(
                f"{a.url}/v1/conversations/{cid}/messages", json=body
            ) as replayed:
                replies = (await replayed.json())["replies"]
        assert "refunded $150.00" in replies[0]["text"]
    assert len((tmp_path / "effects.jsonl").read_text().splitlines()) == 1


async def test_an_owner_that_loses_the_partition_mid_request_is_replaced_by_the_new_one(
    prefix: str,
) -> None:
    gates = {"a": asyncio.Event(), "b": asyncio.Event()}
    gates["a"].set()  # b holds its model calls: the request waits there
    accepted = asyncio.Event()  # the turn reached b's model
    nodes = two_nodes(prefix, scripted(gates, {"b": accepted}), flow_name=FLOW)
    async with nodes as (a, b, split):
        cid = conversation_on(split, "b")
        partition = partition_of(cid, split.partitions)
        async with aiohttp.ClientSession() as session:
            posting = asyncio.ensure_future(
                session.post(f"{a.url}/v1/conversations/{cid}/messages", json={"text": "hello"})
            )
            await asyncio.wait_for(accepted.wait(), 10)
            assert not posting.done()
            await split.move(partition, "a")
            async with await asyncio.wait_for(posting, 10) as posted:
                assert posted.status == 200, await posted.text()
                answer = await posted.json()
        assert answer["replies"][0]["text"] == "triage heard: hello"
        assert a.runtime.conversation(cid) is not None  # the new owner answered
        assert partition not in b.server.listening
        gates["b"].set()  # lets b's runtime close without waiting for the turn it lost


async def test_a_partition_nobody_owns_is_a_503_with_retry_after_after_ttl_and_a_second(
    prefix: str,
) -> None:
    ttl = 1.0
    owners = {p: ("a" if p % 2 == 0 else None) for p in range(8)}
    async with two_nodes(prefix, scripted(), flow_name=FLOW, lease_ttl=ttl, owners=owners) as (
        a,
        _b,
        split,
    ):
        cid = conversation_on(split, None)
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            async with session.post(
                f"{a.url}/v1/conversations/{cid}/messages", json={"text": "hello"}
            ) as refused:
                waited = time.monotonic() - started
                assert refused.status == 503
                assert int(refused.headers["Retry-After"]) >= 1
                error = (await refused.json())["error"]
        assert error["code"] == "owner_unavailable"
        assert error["type"] == "server_error"
        assert "retry" in error["message"]
        assert ttl + 1.0 <= waited <= ttl + 1.0 + 1.0


async def test_a_client_that_leaves_a_forwarded_stream_stops_it_on_the_owner(
    prefix: str,
) -> None:
    async with two_nodes(prefix, scripted(), flow_name=FLOW) as (a, b, split):
        cid = conversation_on(split, "b")
        log = b.service.hub.log(cid)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{a.url}/v1/conversations/{cid}/events") as stream,
        ):
            assert await stream.content.readline() == b"retry: 1000\n"
            assert log.readers == 1  # b streams it
        # The ingress notices at the owner's next sign of life and tells it to stop.
        await asyncio.wait_for(b.server.idle(), 10)
        assert log.readers == 0


async def test_a_large_answer_crosses_in_bounded_chunks_unchanged(prefix: str) -> None:
    limits = ServiceLimits(max_text_chars=40_000)
    async with two_nodes(prefix, scripted(), flow_name=FLOW, limits=limits) as (a, b, split):
        cid = conversation_on(split, "b")
        async with aiohttp.ClientSession() as session:
            for n in range(3):  # each echoed back: about 4 x 30 000 characters of JSON
                text = f"{n}" + "x" * 30_000
                async with session.post(
                    f"{a.url}/v1/conversations/{cid}/messages", json={"text": text}
                ) as posted:
                    assert posted.status == 200
            async with session.get(f"{a.url}/v1/conversations/{cid}") as through:
                relayed = await through.read()
            async with session.get(f"{b.url}/v1/conversations/{cid}") as direct:
                owned = await direct.read()
        assert len(relayed) > 2 * MAX_CHUNK  # more than one frame
        assert relayed == owned


async def test_the_owner_checks_the_same_bearer_token_the_ingress_did(prefix: str) -> None:
    tokens = TokenTable([ApiToken(secret=b"s3cret-token", label="ops")])
    async with two_nodes(prefix, scripted(), flow_name=FLOW, tokens=tokens) as (a, b, split):
        cid = conversation_on(split, "b")
        url = f"{a.url}/v1/conversations/{cid}/messages"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json={"text": "hello"}) as anonymous:
                assert anonymous.status == 401
            good = {"Authorization": "Bearer s3cret-token"}
            async with session.post(url, json={"text": "hello"}, headers=good) as allowed:
                assert allowed.status == 200, await allowed.text()
        assert b.runtime.conversation(cid) is not None


async def test_an_owner_that_stays_silent_is_given_up_on_after_ttl_and_a_second(
    prefix: str,
) -> None:
    ttl = 1.0
    async with two_nodes(prefix, scripted(), flow_name=FLOW, lease_ttl=ttl, frame_timeout=0.5) as (
        a,
        b,
        split,
    ):
        cid = conversation_on(split, "b")
        partition = partition_of(cid, split.partitions)
        await b.server.close()  # b stops answering; a paused process listens and says nothing
        mute = await b.nc.subscribe(rpc_subject(prefix, partition))
        await b.nc.flush()
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            async with session.post(
                f"{a.url}/v1/conversations/{cid}/messages", json={"text": "hello"}
            ) as refused:
                waited = time.monotonic() - started
                assert refused.status == 503
                assert (await refused.json())["error"]["code"] == "owner_unavailable"
        assert ttl + 1.0 <= waited <= ttl + 1.0 + 1.0
        assert mute.delivered >= 2  # asked again, not once


async def test_a_body_larger_than_nats_carries_is_a_413_that_says_so(prefix: str) -> None:
    limits = ServiceLimits(max_body_bytes=4 << 20)
    async with two_nodes(prefix, scripted(), flow_name=FLOW, limits=limits) as (a, b, split):
        cid = conversation_on(split, "b")
        payload = b.nc.max_payload
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{a.url}/v1/conversations/{cid}/messages",
                data=io.BytesIO(json.dumps({"text": "x" * (payload + 1)}).encode()),
                headers={"Content-Type": "application/json"},
            ) as refused,
        ):
            assert refused.status == 413
            error = (await refused.json())["error"]
        assert error["code"] == "too_large_to_forward"
        assert "max_payload" in error["message"]
