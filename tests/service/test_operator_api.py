"""The operator routes over real HTTP: listing, pause and resume, the baton, notes, forks."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.service._support import Served, serving

pytestmark = pytest.mark.anyio


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: object | None = None
) -> tuple[int, Any]:
    async with session.request(method, url, json=body) as response:
        return response.status, await response.json()


async def send(served: Served, session: aiohttp.ClientSession, cid: str, text: str) -> Any:
    status, body = await call(
        session, "POST", f"{served.url}/v1/conversations/{cid}/messages", {"text": text}
    )
    assert status == 200, body
    return body


async def test_the_listing_pages_newest_first_and_filters_by_owner_status_and_flow() -> None:
    async with serving() as served, aiohttp.ClientSession() as session:
        for n in range(5):
            await send(served, session, f"c{n}", "hello")
        # c3 is newest: billing answered and the baton came back to triage (epoch 2).
        await send(served, session, "c3", "billing please")
        status, first = await call(session, "GET", f"{served.url}/v1/conversations?limit=2")
        assert status == 200
        assert [c["conversation_id"] for c in first["data"]] == ["c3", "c4"]
        status, rest = await call(
            session,
            "GET",
            f"{served.url}/v1/conversations?limit=10&cursor={first['next_cursor']}",
        )
        assert [c["conversation_id"] for c in rest["data"]] == ["c2", "c1", "c0"]
        assert rest["next_cursor"] is None
        _, triage = await call(session, "GET", f"{served.url}/v1/conversations?owner=triage")
        assert [(c["conversation_id"], c["epoch"]) for c in triage["data"]][:2] == [
            ("c3", 2),
            ("c4", 0),
        ]
        _, billing = await call(session, "GET", f"{served.url}/v1/conversations?owner=billing")
        assert billing["data"] == []
        _, other = await call(session, "GET", f"{served.url}/v1/conversations?flow=other")
        assert other["data"] == []
        _, closed = await call(session, "GET", f"{served.url}/v1/conversations?status=closed")
        assert closed["data"] == []
        item = first["data"][0]
        assert (item["flow"], item["status"], item["waiting_for_a_person"]) == (
            "support",
            "active",
            False,
        )
        assert item["cost_usd"] == 0.0


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("cursor=zzz", "cursor"),
        ("updated_after=soon", "updated_after"),
    ],
)
async def test_a_bad_listing_parameter_is_a_400_naming_it(query: str, param: str) -> None:
    async with serving() as served, aiohttp.ClientSession() as session:
        status, body = await call(session, "GET", f"{served.url}/v1/conversations?{query}")
        assert status == 400
        assert body["error"]["param"] == param


async def test_a_person_pauses_takes_the_baton_replies_and_hands_it_back_over_http() -> None:
    async with serving() as served, aiohttp.ClientSession() as session:
        base = f"{served.url}/v1/conversations/c"
        await send(served, session, "c", "hello")
        status, paused = await call(
            session, "POST", f"{base}/pause", {"reason": "look", "epoch": 0}
        )
        assert status == 200
        assert paused["paused_by"] == "person:loopback"
        async with session.post(f"{base}/messages?wait=false", json={"text": "anyone?"}) as r:
            assert r.status == 202
        await served.runtime.settle()
        _, view = await call(session, "GET", f"{served.url}/v1/conversations?status=paused")
        assert [c["conversation_id"] for c in view["data"]] == ["c"]
        assert view["data"][0]["waiting_for_a_person"] is True
        status, taken = await call(session, "POST", f"{base}/baton/take", {"epoch": 0})
        assert status == 200
        assert (taken["owner"], taken["epoch"]) == ("person:loopback", 1)
        status, replied = await call(
            session, "POST", f"{base}/baton/reply", {"epoch": 1, "text": "a person here"}
        )
        assert status == 200
        assert replied["waiting_for_a_person"] is False
        status, given = await call(
            session, "POST", f"{base}/baton/give", {"epoch": 1, "agent": "billing"}
        )
        assert (status, given["owner"], given["epoch"]) == (200, "billing", 2)
        _, shown = await call(session, "GET", base)
        texts = [item.get("text") for item in shown["transcript"]]
        assert texts[-2:] == ["anyone?", "a person here"]


async def test_a_stale_take_is_a_409_that_says_what_changed() -> None:
    async with serving() as served, aiohttp.ClientSession() as session:
        base = f"{served.url}/v1/conversations/c"
        # billing answers and the baton returns to triage: epoch 2.
        await send(served, session, "c", "billing please")
        status, body = await call(session, "POST", f"{base}/baton/take", {"epoch": 0})
        assert status == 409
        assert body["error"]["code"] == "conflict"
        message = body["error"]["message"]
        assert "it is at epoch 2, owned by triage; you acted on epoch 0" in message
        assert "the baton moved since: epoch 1: billing; epoch 2: triage" in message


async def test_actions_on_an_unknown_conversation_or_with_a_bad_body_are_refused_clearly() -> None:
    async with serving() as served, aiohttp.ClientSession() as session:
        status, body = await call(
            session, "POST", f"{served.url}/v1/conversations/nobody/pause", {}
        )
        assert (status, body["error"]["code"]) == (404, "conversation_not_found")
        await send(served, session, "c", "hello")
        status, body = await call(
            session, "PUT", f"{served.url}/v1/conversations/c/breakpoints", {"breakpoints": ["x"]}
        )
        assert status == 400
        assert body["error"]["param"] == "breakpoints[0]"
        status, body = await call(session, "POST", f"{served.url}/v1/conversations/c/resume", {})
        assert (status, body["error"]["code"]) == (409, "conflict")


async def test_a_note_and_a_fork_over_http() -> None:
    async with serving() as served, aiohttp.ClientSession() as session:
        base = f"{served.url}/v1/conversations/c"
        await send(served, session, "c", "hello")
        status, noted = await call(session, "POST", f"{base}/notes", {"text": "be brief"})
        assert (status, noted["notes_pending"]) == (200, 1)
        status, fork = await call(
            session, "POST", f"{base}/fork", {"upto": 1, "conversation_id": "c-2"}
        )
        assert status == 201
        assert (fork["conversation_id"], fork["forked_from"], fork["epoch"]) == ("c-2", "c", 0)
        reply = await send(served, session, "c-2", "again")
        assert reply["replies"][0]["text"] == "triage heard: again"
