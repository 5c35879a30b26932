"""Invariant 8: a hot-swap never drops or duplicates a call, with swaps interleaved with calls.

Calls block inside a gated adapter until the machine lets them finish or fail, so swaps land
while calls are in flight. Checked after every step: each attempt went to the adapter the
slot held when that attempt started; every call that ended got exactly one result; no
adapter saw an attempt that started after it was swapped out; with a retry, the retry went
to the adapter held when it started.
"""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from relaybaton.actors.routing import HealthBoard, ModelSlot
from relaybaton.adapters import (
    AssistantMessage,
    Capabilities,
    ModelRequest,
    ModelResponse,
    RequestMetadata,
    RetryPolicy,
)
from relaybaton.errors import ModelOverloadedError
from relaybaton.runtime import MonotonicClock


class _Gated:
    """An adapter whose calls wait for a verdict: ``True`` answers, ``False`` fails."""

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        self.name = name
        self.capabilities = Capabilities()
        self.log = log
        self.waiting: dict[str, asyncio.Future[bool]] = {}

    async def complete(self, request: ModelRequest) -> ModelResponse:
        call = request.metadata.conversation_id
        self.log.append((call, self.name))
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting[call] = future
        try:
            ok = await future
        finally:
            del self.waiting[call]
        if not ok:
            raise ModelOverloadedError("gated failure", provider="test")
        return ModelResponse(message=AssistantMessage(text=f"{call}@{self.name}"))

    def stream(self, request: ModelRequest):  # type: ignore[no-untyped-def]  # unused here
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class SwapMachine(RuleBasedStateMachine):
    with_board = False

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.log: list[tuple[str, str]] = []
        self.names = itertools.count()
        self.adapters: dict[str, _Gated] = {}
        first = self._adapter()
        clock = MonotonicClock()
        board = HealthBoard(clock) if self.with_board else None
        self.slot = ModelSlot(
            "s", first, clock=clock, retry=RetryPolicy(attempts=2, base_delay=0.0), board=board
        )
        self.calls: dict[str, asyncio.Task[ModelResponse]] = {}
        self.expected: dict[str, list[str]] = {}  # call -> adapters held at each attempt start
        self.ids = itertools.count()

    def teardown(self) -> None:
        for task in self.calls.values():
            task.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()

    def _adapter(self) -> _Gated:
        adapter = _Gated(f"m{next(self.names)}", self.log)
        self.adapters[adapter.name] = adapter
        return adapter

    def _settle(self) -> None:
        for _ in range(5):
            self.loop.run_until_complete(asyncio.sleep(0))

    def _waiting(self) -> list[tuple[str, _Gated]]:
        return [(c, a) for a in self.adapters.values() for c in a.waiting]

    @rule()
    def start_call(self) -> None:
        call = f"c{next(self.ids)}"
        request = ModelRequest(metadata=RequestMetadata(conversation_id=call))
        self.expected[call] = [self.slot.adapter.name]
        self.calls[call] = self.loop.create_task(self.slot.call(request))
        self._settle()

    @rule()
    def swap(self) -> None:
        self.slot.swap(self._adapter())

    @precondition(lambda self: bool(self._waiting()))
    @rule(data=st.data(), ok=st.booleans())
    def end_attempt(self, data: st.DataObject, ok: bool) -> None:
        call, adapter = data.draw(st.sampled_from(sorted(self._waiting(), key=lambda p: p[0])))
        retries = len(self.expected[call]) < self.slot.retry.attempts and not ok
        adapter.waiting[call].set_result(ok)
        if retries:
            self.expected[call].append(self.slot.adapter.name)
        self._settle()

    @invariant()
    def attempts_went_where_the_slot_pointed_at_their_start(self) -> None:
        seen: dict[str, list[str]] = {}
        for call, adapter in self.log:
            seen.setdefault(call, []).append(adapter)
        assert seen == {c: a for c, a in self.expected.items() if c in seen}
        assert set(seen) == set(self.expected)  # no call was dropped before its first attempt

    @invariant()
    def every_ended_call_has_exactly_one_outcome(self) -> None:
        for call, task in self.calls.items():
            in_flight = any(call in a.waiting for a in self.adapters.values())
            assert task.done() != in_flight, call
            if task.done() and task.exception() is None:
                assert task.result().message.text == f"{call}@{self.expected[call][-1]}"


class SwapMachineWithBoard(SwapMachine):
    with_board = True


settings_ = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestSwaps = SwapMachine.TestCase
TestSwaps.settings = settings_
TestSwapsWithBoard = SwapMachineWithBoard.TestCase
TestSwapsWithBoard.settings = settings_
