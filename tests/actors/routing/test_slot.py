"""Model slots: hot swap loses nothing, retries wait on the clock, listeners see every call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import anyio
import pytest

from relaybaton.actors.routing import HealthBoard, ModelSlot
from relaybaton.adapters import (
    Capabilities,
    ModelAdapter,
    ModelCallRecord,
    ModelRequest,
    ModelResponse,
    RequestMetadata,
    RetryPolicy,
    StreamDone,
    StreamEvent,
    TextDelta,
)
from relaybaton.errors import AuthenticationError, ModelOverloadedError, RateLimitedError
from relaybaton.runtime import MonotonicClock
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
    slot = ModelSlot("general", old, clock=clock, retry=RetryPolicy(seed=1))
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
    slot = ModelSlot("general", model, clock=clock, retry=RetryPolicy(seed=3))
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
    slot = ModelSlot("general", model, clock=FakeClock(), retry=RetryPolicy(attempts=5))
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
    slot = ModelSlot("general", model, clock=clock, retry=RetryPolicy(attempts=3, base_delay=1.0))
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


# --- one retry policy: Retry-After, the deadline, streams ---------------------------------------

MODES = ["call", "stream", "routed"]


def _slot(mode: str, model: ModelAdapter, clock: FakeClock, retry: RetryPolicy) -> ModelSlot:
    """A held slot, or a routed one (a health board) that retries through its other loop."""
    board = HealthBoard(clock) if mode == "routed" else None
    return ModelSlot("general", model, clock=clock, retry=retry, board=board)


async def _ask(slot: ModelSlot, mode: str, texts: list[str] | None = None) -> ModelResponse:
    if mode == "stream":
        return await slot.stream(REQUEST, on_text=(texts if texts is not None else []).append)
    return await slot.call(REQUEST)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("asked", [2.0, 40.0])
async def test_the_slot_waits_at_least_what_the_server_asks(mode: str, asked: float) -> None:
    # 40 s is more than any backoff cap (and than the old 4 x max_backoff ceiling): the
    # server's word is a floor, never trimmed, while it fits in the deadline.
    clock = FakeClock()
    model = ScriptedModel([RateLimitedError("slow down", retry_after=asked), "ok"])
    slot = _slot(mode, model, clock, RetryPolicy(attempts=2, base_delay=1.0, deadline=60.0))
    done: list[str] = []

    async def ask() -> None:
        done.append((await _ask(slot, mode)).message.text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        await clock.advance(asked - 0.01)
        assert done == []
        assert len(model.requests) == 1
        await clock.advance(0.01)
    assert done == ["ok"]
    assert len(model.requests) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_retry_after_past_the_deadline_fails_at_once_saying_why(mode: str) -> None:
    clock = FakeClock()
    model = ScriptedModel([RateLimitedError("slow down", retry_after=90.0), "never"])
    slot = _slot(mode, model, clock, RetryPolicy(attempts=3, deadline=60.0))
    with anyio.fail_after(5), pytest.raises(RateLimitedError, match="slow down") as info:
        await _ask(slot, mode)  # a sleep on the fake clock would never end: fail_after says so
    assert clock.now() == 0.0
    assert len(model.requests) == 1
    note = " ".join(getattr(info.value, "__notes__", []))
    assert "asked to wait 90 s" in note
    assert "60 s retry deadline" in note


async def test_the_deadline_counts_from_the_calls_start() -> None:
    clock = FakeClock()
    model = ScriptedModel(
        [
            RateLimitedError("slow down", retry_after=5.0),
            RateLimitedError("slow down more", retry_after=8.0),
            "never",
        ]
    )
    retry = RetryPolicy(attempts=3, base_delay=1.0, deadline=10.0)
    slot = ModelSlot("general", model, clock=clock, retry=retry)
    errors: list[str] = []

    async def call() -> None:
        try:
            await slot.call(REQUEST)
        except RateLimitedError as exc:
            errors.append(str(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        await clock.advance(5.0)  # the first wait: 5 s of the 10 s spent
    # 8 s more would end at 13 s, past the deadline: raised at 5 s, not slept.
    assert errors == ["slow down more"]
    assert clock.now() == 5.0
    assert len(model.requests) == 2


async def test_a_stream_retries_before_its_first_token_through_the_slots_policy() -> None:
    clock = FakeClock()
    model = ScriptedModel([ModelOverloadedError("busy"), "hello world"])
    slot = ModelSlot(
        "general", model, clock=clock, retry=RetryPolicy(attempts=2, base_delay=1.0, seed=3)
    )
    events: list[ModelCallRecord] = []
    slot.listeners.append(events.append)
    texts: list[str] = []
    done: list[str] = []

    async def stream() -> None:
        done.append((await slot.stream(REQUEST, agent="triage", on_text=texts.append)).model)

    async with anyio.create_task_group() as tg:
        tg.start_soon(stream)
        await anyio.wait_all_tasks_blocked()
        assert (texts, len(model.requests)) == ([], 1)  # waiting out the backoff
        await clock.advance(1.0)  # the first backoff is at most base_delay
    assert texts == ["hello", " world"]
    assert len(done) == 1
    assert [(e.outcome, e.retries) for e in events] == [("ModelOverloadedError", 0), ("ok", 1)]


async def test_a_stream_with_one_attempt_raises_the_first_error() -> None:
    model = ScriptedModel([ModelOverloadedError("busy"), "never"])
    slot = ModelSlot("general", model, clock=FakeClock(), retry=RetryPolicy(attempts=1))
    with anyio.fail_after(5), pytest.raises(ModelOverloadedError, match="busy"):
        await slot.stream(REQUEST, on_text=lambda _: None)
    assert len(model.requests) == 1


class _CutAfterText:
    """A stream that shows some text, then fails with a retryable error."""

    name = "cut"
    capabilities = Capabilities()

    def __init__(self) -> None:
        self.sent = 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        raise AssertionError("streamed only")

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        self.sent += 1
        yield TextDelta(text="half an ans")
        raise ModelOverloadedError("cut mid-answer")

    async def aclose(self) -> None:
        return None


async def test_a_stream_that_showed_text_is_never_retried() -> None:
    model = _CutAfterText()
    slot = ModelSlot("general", model, clock=FakeClock(), retry=RetryPolicy(attempts=3))
    texts: list[str] = []
    with anyio.fail_after(5), pytest.raises(ModelOverloadedError, match="cut mid-answer"):
        await slot.stream(REQUEST, on_text=texts.append)
    assert (texts, model.sent) == (["half an ans"], 1)


class _SelfRetrying:
    """An adapter with retries of its own, like the HTTP adapters: a policy of 3 attempts."""

    name = "self-retrying"
    capabilities = Capabilities()
    retries_itself = True  # how an adapter tells a retrying caller to mark it sending_once

    def __init__(self) -> None:
        self.sent = 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        async def send() -> ModelResponse:
            self.sent += 1
            raise ModelOverloadedError(f"busy {self.sent}")

        return await RetryPolicy(attempts=3, base_delay=0.0).call(send, clock=MonotonicClock())

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        yield StreamDone(response=await self.complete(request))

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("mode", MODES)
async def test_nothing_retries_twice_under_a_slot(mode: str) -> None:
    model = _SelfRetrying()
    board = HealthBoard(MonotonicClock()) if mode == "routed" else None
    slot = ModelSlot(
        "general",
        model,
        clock=MonotonicClock(),
        retry=RetryPolicy(attempts=2, base_delay=0.0),
        board=board,
    )
    with anyio.fail_after(5), pytest.raises(ModelOverloadedError, match="busy 2"):
        await _ask(slot, mode)
    assert model.sent == 2  # the slot's two attempts, one send each; not 2 x 3
