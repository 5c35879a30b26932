"""Model slots: hot swap loses nothing, retries wait on the clock, listeners see every call."""

from __future__ import annotations

from functools import partial

import anyio
import pytest

from relaybaton.actors.routing import ModelSlot
from relaybaton.adapters import ModelCallRecord, ModelRequest, ModelResponse, RequestMetadata
from relaybaton.errors import AuthenticationError, ModelOverloadedError, RateLimitedError
from relaybaton.testing import FakeClock, ScriptedModel

pytestmark = pytest.mark.anyio

REQUEST = ModelRequest(metadata=RequestMetadata(agent="triage", conversation_id="c1"))


async def test_a_call_begun_on_the_old_adapter_finishes_there_and_new_calls_go_to_the_new() -> None:
    gate = anyio.Event()
    old = ScriptedModel(["from old"], name="old", gate=gate)
    new = ScriptedModel(["from new", "from new again"], name="new")
    slot = ModelSlot("general", old, clock=FakeClock())
    answers: list[str] = []

    async def call() -> None:
        response = await slot.call(REQUEST)
        answers.append(response.message.text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        assert slot.in_flight == {"old": 1}
        assert slot.swap(new) is old
        await call()
        assert answers == ["from new"]
        gate.set()
    assert answers == ["from new", "from old"]
    assert (len(old.requests), len(new.requests)) == (1, 1)
    assert slot.calls == {"old": 1, "new": 1}
    assert slot.in_flight == {"old": 0, "new": 0}


async def test_a_retry_after_a_swap_goes_to_the_new_adapter() -> None:
    clock = FakeClock()
    old = ScriptedModel([ModelOverloadedError("busy")], name="old")
    new = ScriptedModel(["from new"], name="new")
    slot = ModelSlot("general", old, clock=clock, seed=1)
    async with anyio.create_task_group() as tg:
        responses: list[ModelResponse] = []

        async def call() -> None:
            responses.append(await slot.call(REQUEST))

        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        slot.swap(new)
        await clock.advance(0.25)
    assert responses[0].message.text == "from new"


async def test_listeners_get_one_model_call_event_per_attempt() -> None:
    clock = FakeClock()
    model = ScriptedModel([ModelOverloadedError("busy"), "ok"], name="scripted", cost_per_call=0.1)
    slot = ModelSlot("general", model, clock=clock, seed=3)
    events: list[ModelCallRecord] = []
    slot.listeners.append(events.append)
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(slot.call, REQUEST, agent="triage"))
        await anyio.wait_all_tasks_blocked()
        await clock.advance(0.25)
    assert [
        (e.outcome, e.model, e.slot, e.agent, e.conversation_id, e.retries) for e in events
    ] == [
        ("ModelOverloadedError", "scripted", "general", "triage", "c1", 0),
        ("ok", "scripted", "general", "triage", "c1", 1),
    ]
    assert events[1].usage.cost_usd == 0.1
    assert events[1].usage.output_tokens > 0


async def test_a_non_retryable_error_is_raised_at_once() -> None:
    model = ScriptedModel([AuthenticationError("bad key", status=401), "never"])
    slot = ModelSlot("general", model, clock=FakeClock(), attempts=5)
    with pytest.raises(AuthenticationError, match="bad key"):
        await slot.call(REQUEST)
    assert len(model.requests) == 1


async def test_the_backoff_honours_the_providers_retry_after() -> None:
    clock = FakeClock()
    model = ScriptedModel([RateLimitedError("slow down", retry_after=2.0), "ok"])
    slot = ModelSlot("general", model, clock=clock)
    done: list[str] = []

    async def call() -> None:
        done.append((await slot.call(REQUEST)).message.text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        await clock.advance(1.9)
        assert done == []
        await clock.advance(0.1)
    assert done == ["ok"]


async def test_the_last_error_is_raised_when_every_attempt_failed() -> None:
    clock = FakeClock()
    model = ScriptedModel(
        [ModelOverloadedError("one"), ModelOverloadedError("two"), ModelOverloadedError("three")]
    )
    slot = ModelSlot("general", model, clock=clock, attempts=3, backoff=1.0)
    errors: list[str] = []

    async def call() -> None:
        try:
            await slot.call(REQUEST)
        except ModelOverloadedError as exc:
            errors.append(str(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        await clock.advance(10.0)
    assert errors == ["three"]
    assert len(model.requests) == 3
