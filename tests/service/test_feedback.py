"""Feedback over HTTP: journaled, turned into a grade, exported as satisfaction; thresholds."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from relaybaton.actors import open_runtime
from relaybaton.adapters import ModelCallRecord
from relaybaton.evals import Thresholds
from relaybaton.runtime import Feedback, Journal, MonotonicClock
from relaybaton.runtime._store import MemoryStore
from relaybaton.service import create_service
from relaybaton.testing import ScriptedModel
from tests.service._support import agents, serving

pytestmark = pytest.mark.anyio


async def test_a_rating_is_a_grade_of_the_answer_and_counts_in_satisfaction() -> None:
    async with serving() as served, aiohttp.ClientSession() as session:
        records: list[ModelCallRecord] = []
        served.runtime.slots["general"].listeners.append(records.append)
        async with session.post(
            f"{served.url}/v1/conversations/c1/messages", json={"text": "hello", "message_id": "m1"}
        ) as response:
            assert response.status == 200
        for rating in (5, 4):
            async with session.post(
                f"{served.url}/v1/conversations/c1/feedback",
                json={"rating": rating, "comment": "quick", "message_id": "m1"},
            ) as response:
                assert response.status == 202
                body = await response.json()
        assert body == {
            "conversation_id": "c1", "rating": 4, "utility": 0.75, "agent": "triage",
            "journaled": False,
        }  # fmt: skip
        graded = [r for r in records if r.outcome == "graded"]
        assert [(r.utility, r.agent, r.conversation_id) for r in graded] == [
            (1.0, "triage", "c1"), (0.75, "triage", "c1"),
        ]  # fmt: skip
        async with session.get(f"{served.url}/metrics") as response:
            text = await response.text()
        assert 'relaybaton_feedback_total{rating="5"} 1.0' in text
        assert "relaybaton_satisfaction 4.5" in text
        # The grades are on the utility histogram, not counted as model calls.
        assert (
            'relaybaton_model_utility_count{model="scripted:general",provider="scripted"} 2.0'
            in text
        )
        assert 'outcome="graded"' not in text
        async with session.get(f"{served.url}/v1/quality") as response:
            quality = await response.json()
        assert quality["satisfaction"] == 4.5
        assert quality["ratings"] == 2


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("c1", {"rating": 6}, 400, "invalid_body"),
        ("c1", {"rating": "five"}, 400, None),
        ("c1", {"rating": 3, "stars": 3}, 400, None),
        ("c1", {"rating": 3, "comment": "x" * 2001}, 400, "invalid_body"),
        ("nobody", {"rating": 3}, 404, "conversation_not_found"),
        ("c1", {"rating": 3, "message_id": "m-unknown"}, 404, "message_not_found"),
    ],
)
async def test_bad_feedback_is_refused_naming_the_field(
    path: str, body: dict[str, object], status: int, code: str | None
) -> None:
    async with serving() as served, aiohttp.ClientSession() as session:
        await served.runtime.send("c1", "hello", message_id="m1")
        async with session.post(f"{served.url}/v1/conversations/{path}/feedback", json=body) as r:
            assert r.status == status
            error = (await r.json())["error"]
        if code is not None:
            assert error["code"] == code
        if code == "invalid_body":
            assert "$.rating" in error["message"] or "$.comment" in error["message"]
        assert served.service.feedback.watch.ratings_total == [0] * 6


async def test_feedback_is_journaled_with_the_conversation() -> None:
    store = MemoryStore()
    triage, billing = agents()
    model = ScriptedModel(lambda _r: "hi", name="scripted:general")
    async with open_runtime(triage, agents=[billing], models=model, store=store) as runtime:
        service = create_service(runtime, flow_name="support")
        runner = web.AppRunner(service.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            await runtime.send("c1", "hello", message_id="m1")
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"http://{host}:{port}/v1/conversations/c1/feedback",
                    json={"rating": 2, "comment": "slow", "message_id": "m1"},
                ) as response,
            ):
                assert (await response.json())["journaled"] is True
        finally:
            await runner.cleanup()
            service.close()
    journal: Journal[object] = Journal(store, object, clock=MonotonicClock())
    events = [r.event for r in journal.decode(await store.read("c1"))]
    assert Feedback(rating=2, comment="slow", message_id="m1", agent="triage") in events


async def test_declared_thresholds_are_reported_met_or_breached() -> None:
    async with serving() as served, aiohttp.ClientSession() as session:
        watch = served.service.feedback.watch
        watch.thresholds = Thresholds(p95_ms=60_000, error_rate=0.01, satisfaction=4.5)
        for index in range(3):
            await served.runtime.send(f"c{index}", "hello")
        watch.rate(3)
        async with session.get(f"{served.url}/v1/quality") as response:
            judged = {t["threshold"]: t["state"] for t in (await response.json())["thresholds"]}
        assert judged == {"p95_ms": "met", "error_rate": "met", "satisfaction": "breached"}
        async with session.get(f"{served.url}/metrics") as response:
            text = await response.text()
        assert 'relaybaton_threshold_met{threshold="satisfaction"} 0.0' in text
        assert 'relaybaton_threshold_met{threshold="p95_ms"} 1.0' in text


async def test_a_rating_grades_the_agent_that_answered_not_the_owner_it_returned_to() -> None:
    async with serving() as served, aiohttp.ClientSession() as session:
        await served.runtime.send("c1", "billing: why two charges?")
        conversation = served.runtime.conversation("c1")
        assert conversation is not None
        assert conversation.owner == "triage"  # the baton went back after billing answered
        async with session.post(
            f"{served.url}/v1/conversations/c1/feedback", json={"rating": 1}
        ) as response:
            assert (await response.json())["agent"] == "billing"
