"""The native API over real HTTP on 127.0.0.1: messages, conversations, events, traces."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from relaybaton.service import ServiceLimits
from tests.service._support import serving

pytestmark = pytest.mark.anyio


async def _sse(response: aiohttp.ClientResponse, stop_kind: str) -> list[dict[str, object]]:
    """Read frames until one of ``stop_kind``; return the events (comments as ``: ...``)."""
    events: list[dict[str, object]] = []
    frame: dict[str, object] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith(":"):
            events.append({"comment": line})
            if stop_kind == "comment":
                return events
        elif line.startswith("data: "):
            frame.update(json.loads(line[6:]))
        elif line.startswith("id: "):
            frame["sse_id"] = int(line[4:])
        elif not line and frame:
            events.append(frame)
            if frame.get("kind") == stop_kind:
                return events
            frame = {}
    return events


async def test_a_message_gets_its_replies_and_a_repeated_id_is_processed_once() -> None:
    async with serving() as served, aiohttp.ClientSession() as http:
        url = f"{served.url}/v1/conversations/c1/messages"
        first = await http.post(url, json={"message_id": "m1", "text": "hello"})
        again = await http.post(url, json={"message_id": "m1", "text": "hello"})
        assert first.status == again.status == 200
        body, repeat = await first.json(), await again.json()
        assert body["replies"] == [{"agent": "triage", "text": "triage heard: hello"}]
        assert repeat == body
        conversations = served.runtime.conversations
        assert (conversations.turns_accepted, conversations.duplicates) == (1, 1)


async def test_wait_false_answers_202_and_the_conversation_shows_owner_epoch_and_usage() -> None:
    async with serving() as served, aiohttp.ClientSession() as http:
        posted = await http.post(
            f"{served.url}/v1/conversations/c2/messages?wait=false",
            json={"message_id": "b1", "text": "billing: charged twice"},
        )
        assert posted.status == 202
        accepted = await posted.json()
        assert accepted["message_id"] == "b1"
        assert posted.headers["Location"] == "/v1/conversations/c2"
        # The repeat of an accepted id waits for the first one's result.
        result = await served.runtime.send("c2", "ignored", message_id="b1")
        assert result.replies[0].agent == "billing"
        got = await http.get(f"{served.url}/v1/conversations/c2")
        view = await got.json()
        assert view["owner"] == "triage"  # the baton came back after billing's answer
        assert view["epoch"] == 2
        assert view["status"] == "active"
        assert view["transcript"][0]["type"] == "user"
        assert set(view["usage"]["by_agent"]) == {"triage", "billing"}
        assert {row["model"] for row in view["usage"]["by_agent_and_model"]} == {"scripted:general"}


async def test_unknown_conversation_and_bad_ids_get_404_and_400_in_the_error_shape() -> None:
    async with serving() as served, aiohttp.ClientSession() as http:
        missing = await http.get(f"{served.url}/v1/conversations/nope")
        assert missing.status == 404
        error = (await missing.json())["error"]
        assert error["code"] == "conversation_not_found"
        assert set(error) == {"message", "type", "param", "code"}
        bad = await http.post(f"{served.url}/v1/conversations/%20x/messages", json={"text": "a"})
        assert bad.status == 400
        assert (await bad.json())["error"]["code"] == "invalid_conversation_id"
        typed = await http.post(f"{served.url}/v1/conversations/c/messages", json={"text": 3})
        assert typed.status == 400
        detail = (await typed.json())["error"]
        assert detail["param"] == "text"
        assert "Expected `str`, got `int`" in detail["message"]
        route = await http.get(f"{served.url}/v1/nothing")
        assert route.status == 404
        assert (await route.json())["error"]["type"] == "not_found_error"


async def test_a_handler_crash_is_a_clean_500_and_its_traceback_is_logged(
    monkeypatch: pytest.MonkeyPatch, captured_logs: list[str]
) -> None:
    def broken_view(conversation: object) -> dict[str, object]:
        raise ZeroDivisionError("the view divided by zero")

    async with serving() as served, aiohttp.ClientSession() as http:
        url = f"{served.url}/v1/conversations/c500"
        await http.post(f"{url}/messages", json={"text": "hello"})
        monkeypatch.setattr("relaybaton.service._server.conversation_view", broken_view)
        answer = await http.get(url)
        assert answer.status == 500
        body = await answer.text()
    assert json.loads(body) == {
        "error": {
            "message": "internal error; the server logged it",
            "type": "server_error",
            "param": None,
            "code": "internal",
        }
    }
    assert "Traceback" not in body
    assert "ZeroDivisionError" not in body
    [record] = [json.loads(line) for line in captured_logs if '"request_failed"' in line]
    assert record["level"] == "error"
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert "in broken_view" in record["exception"]
    assert record["exception"].rstrip().endswith("ZeroDivisionError: the view divided by zero")


async def test_events_stream_replays_after_last_event_id_and_sends_keepalives() -> None:
    limits = ServiceLimits(keepalive_s=0.05)
    async with serving(limits=limits) as served, aiohttp.ClientSession() as http:
        events_url = f"{served.url}/v1/conversations/c3/events"
        stream = await http.get(events_url)
        assert stream.headers["Content-Type"] == "text/event-stream"
        await http.post(f"{served.url}/v1/conversations/c3/messages", json={"text": "billing x"})
        seen = await _sse(stream, "reply")
        stream.close()
        kinds = [e.get("kind") for e in seen if "kind" in e]
        assert [k for k in kinds if k != "reply_delta"][:3] == ["model_call", "handoff", "handoff"]
        deltas = [e["text"] for e in seen if e.get("kind") == "reply_delta"]
        # The scripted model streams word by word; billing's words come before its reply.
        assert "".join(deltas).strip().endswith("billing heard: billing x")
        handoffs = [e for e in seen if e.get("kind") == "handoff"]
        assert [(h["action"], h["epoch"]) for h in handoffs] == [("handoff", 1), ("accept", 1)]
        reply = seen[-1]
        assert reply["text"] == "billing heard: billing x"
        # Reconnect after the first handoff: everything after it, nothing before.
        first_handoff = handoffs[0]["sse_id"]
        assert isinstance(first_handoff, int)
        again = await http.get(events_url, headers={"Last-Event-ID": str(first_handoff)})
        replayed = await _sse(again, "reply")
        ids = [e["sse_id"] for e in replayed if "sse_id" in e]
        assert ids[0] == first_handoff + 1
        # The return of the baton comes after the reply; then the stream idles.
        tail = await _sse(again, "comment")
        assert any(e.get("action") == "return" for e in tail)
        assert tail[-1] == {"comment": ": keep-alive"}
        again.close()


async def test_a_client_that_goes_away_does_not_cancel_the_turn() -> None:
    gate = asyncio.Event()
    async with serving(gate=gate) as served:
        async with aiohttp.ClientSession() as http:
            post = http.post(
                f"{served.url}/v1/conversations/c4/messages",
                json={"message_id": "gone", "text": "slow"},
                timeout=aiohttp.ClientTimeout(total=0.2),
            )
            with pytest.raises(asyncio.TimeoutError):
                await post
        conversation = served.runtime.conversation("c4")
        assert conversation is not None
        assert conversation.active is not None
        gate.set()
        result = await served.runtime.send("c4", "slow", message_id="gone")
        assert result.text == "triage heard: slow"
        assert served.runtime.conversations.turns_accepted == 1


async def test_trace_has_genai_spans_and_the_new_owner_links_to_the_previous_one() -> None:
    async with serving() as served, aiohttp.ClientSession() as http:
        base = f"{served.url}/v1/conversations/c5"
        await http.post(f"{base}/messages", json={"text": "time please"})
        await http.post(f"{base}/messages", json={"text": "billing please"})
        spans = (await (await http.get(f"{base}/trace")).json())["spans"]
        names = [s["name"] for s in spans]
        assert names.count("invoke_workflow support") == 2
        assert "execute_tool clock" in names
        assert "chat general" in names
        assert "handoff billing" in names
        by_id = {s["span_id"]: s for s in spans}
        chat = next(s for s in spans if s["name"] == "chat general")
        assert chat["attributes"]["gen_ai.operation.name"] == "chat"
        assert chat["attributes"]["gen_ai.provider.name"] == "scripted"
        assert chat["attributes"]["gen_ai.conversation.id"] == "c5"
        assert by_id[chat["parent_span_id"]]["name"].startswith("invoke_agent ")
        billing = next(s for s in spans if s["name"] == "invoke_agent billing")
        linked = [by_id[link["span_id"]]["name"] for link in billing["links"]]
        assert linked == ["invoke_agent triage"]
        assert billing["attributes"]["relaybaton.epoch"] == 1
        tool = next(s for s in spans if s["name"] == "execute_tool clock")
        assert "gen_ai.tool.call.result" not in tool["attributes"]  # content is off by default


async def test_health_ready_metrics_and_approvals() -> None:
    async with serving() as served, aiohttp.ClientSession() as http:
        assert (await http.get(f"{served.url}/healthz")).status == 200
        assert (await http.get(f"{served.url}/readyz")).status == 200
        await http.post(f"{served.url}/v1/conversations/c6/messages", json={"text": "billing"})
        metrics = await (await http.get(f"{served.url}/metrics")).text()
        for name in (
            'relaybaton_messages_received_total{api="native"} 1.0',
            'relaybaton_handoffs_total{action="handoff"} 1.0',
            "relaybaton_model_request_duration_seconds_bucket",
            'relaybaton_model_tokens_total{direction="input"',
            "relaybaton_turns_in_flight 0.0",
            "relaybaton_mailbox_depth 0.0",
            "relaybaton_approvals_pending 0.0",
            'relaybaton_http_requests_total{method="POST",'
            'route="/v1/conversations/{conversation_id}/messages",status="200"} 1.0',
        ):
            assert name in metrics, name
        assert "c6" not in metrics  # no conversation-level labels
        listed = await (await http.get(f"{served.url}/v1/approvals")).json()
        assert listed == {"object": "list", "data": []}
        decided = await http.post(f"{served.url}/v1/approvals/a1", json={"decision": "approve"})
        assert decided.status == 404
        await served.service.drain(1.0)
        assert (await http.get(f"{served.url}/readyz")).status == 503
        refused = await http.post(f"{served.url}/v1/conversations/c6/messages", json={"text": "x"})
        assert refused.status == 503
        assert (await refused.json())["error"]["code"] == "draining"
