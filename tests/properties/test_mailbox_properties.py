"""The mailbox's close semantics against a model deque (docs/architecture.md, Mailboxes).

FIFO; a full mailbox refuses ``put_nowait`` with ``MailboxFullError`` and parks ``put``;
after ``close`` every put fails with ``ActorStoppedError``, items queued before it are still
received, and then a receive raises ``MailboxClosed``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from relaybaton.errors import ActorStoppedError, MailboxFullError
from relaybaton.runtime._mailbox import Mailbox, MailboxClosed
from tests.properties._profile import machine_settings


async def _settle() -> None:
    # Parked putters and getters are woken by future callbacks; a few loop turns let each
    # woken task run to completion. Deterministic: no wall-clock time is involved.
    for _ in range(5):
        await asyncio.sleep(0)


class MailboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.ids = itertools.count()
        self.mailbox: Mailbox[int] | None = None
        self.model: deque[int] = deque()
        self.closed = False
        self.received: list[int] = []
        self.expected_received: list[int] = []
        # Parked async puts and gets, oldest first, as (task, item) / task.
        self.putters: deque[tuple[asyncio.Task[None], int]] = deque()
        self.getters: deque[asyncio.Task[int]] = deque()
        self.capacity = 1

    def teardown(self) -> None:
        for task in [t for t, _ in self.putters] + list(self.getters):
            task.cancel()
        self.loop.run_until_complete(_settle())
        self.loop.close()

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    @initialize(capacity=st.integers(min_value=1, max_value=4))
    def make(self, capacity: int) -> None:
        self.capacity = capacity
        self.mailbox = Mailbox("box", capacity)

    # --- the model's consequences of a freed slot or a new item --------------------------

    def _deliver_model(self) -> None:
        # Parked getters take items first (oldest getter, oldest item); then parked putters
        # fill freed room in the order they parked.
        changed = True
        while changed:
            changed = False
            if self.getters_expected and self.model:
                self.getters_expected.popleft()
                self.expected_received.append(self.model.popleft())
                changed = True
            if self.putters_expected and len(self.model) < self.capacity and not self.closed:
                self.model.append(self.putters_expected.popleft())
                changed = True

    @property
    def getters_expected(self) -> deque[int]:
        return self._getters_expected

    @property
    def putters_expected(self) -> deque[int]:
        return self._putters_expected

    _getters_expected: deque[int]
    _putters_expected: deque[int]

    @initialize()
    def model_queues(self) -> None:
        self._getters_expected = deque()
        self._putters_expected = deque()

    # --- rules ------------------------------------------------------------------------------

    @rule()
    def put_nowait(self) -> None:
        assert self.mailbox is not None
        item = next(self.ids)
        if self.closed:
            with pytest.raises(ActorStoppedError):
                self.mailbox.put_nowait(item)
        elif len(self.model) >= self.capacity:
            with pytest.raises(MailboxFullError):
                self.mailbox.put_nowait(item)
        else:
            self.mailbox.put_nowait(item)
            self.model.append(item)
        self.run(_settle())
        self._deliver_model()
        self._collect()

    @rule()
    def put_waiting(self) -> None:
        assert self.mailbox is not None
        item = next(self.ids)
        task = self.loop.create_task(self.mailbox.put(item))
        self.run(_settle())
        if self.closed:
            assert task.done()
            with pytest.raises(ActorStoppedError):
                task.result()
            return
        if len(self.model) < self.capacity and not self.putters_expected:
            assert task.done(), "a put with room must not wait"
            task.result()
            self.model.append(item)
        else:
            assert not task.done(), "a put into a full mailbox must wait"
            self.putters.append((task, item))
            self.putters_expected.append(item)
        self._deliver_model()
        self._collect()

    @rule()
    def get_nowait(self) -> None:
        assert self.mailbox is not None
        if self.getters_expected:
            return  # a parked getter would race for the item; keep the model simple
        if self.model:
            got = self.mailbox.get_nowait()
            assert got == self.model.popleft()
        elif self.closed:
            with pytest.raises(MailboxClosed):
                self.mailbox.get_nowait()
        else:
            with pytest.raises(IndexError):
                self.mailbox.get_nowait()
        self.run(_settle())
        self._deliver_model()
        self._collect()

    @rule()
    def poll(self) -> None:
        # The drain loop's receive: the same as get_nowait, with None for "empty".
        assert self.mailbox is not None
        if self.getters_expected:
            return
        if self.model:
            assert self.mailbox.poll() == self.model.popleft()
        elif self.closed:
            with pytest.raises(MailboxClosed):
                self.mailbox.poll()
        else:
            assert self.mailbox.poll() is None
        self.run(_settle())
        self._deliver_model()
        self._collect()

    @rule()
    def get_waiting(self) -> None:
        assert self.mailbox is not None
        task = self.loop.create_task(self.mailbox.get())
        self.getters.append(task)
        self.getters_expected.append(0)
        self.run(_settle())
        self._deliver_model()
        self._collect()

    @rule()
    def close(self) -> None:
        assert self.mailbox is not None
        self.mailbox.close()
        self.closed = True
        self.run(_settle())
        # Parked putters fail; parked getters get what is left, then MailboxClosed.
        for task, _item in self.putters:
            assert task.done()
            with pytest.raises(ActorStoppedError):
                task.result()
        self.putters.clear()
        self.putters_expected.clear()
        self._deliver_model()
        self._collect()
        if not self.model:
            for task in self.getters:
                assert task.done()
                with pytest.raises(MailboxClosed):
                    task.result()
            self.getters.clear()
            self.getters_expected.clear()

    @precondition(lambda self: self.putters)
    @rule()
    def cancel_oldest_putter(self) -> None:
        task, item = self.putters.popleft()
        task.cancel()
        self.run(_settle())
        assert task.cancelled()
        self.putters_expected.remove(item)
        self._deliver_model()
        self._collect()

    def _collect(self) -> None:
        while self.putters and self.putters[0][0].done():
            task, item = self.putters.popleft()
            task.result()  # a parked put that finished must have queued its item
            assert item not in self.putters_expected, "a put finished that the model holds back"
        while self.getters and self.getters[0].done():
            task = self.getters.popleft()
            if task.exception() is None:
                self.received.append(task.result())
            else:
                # Only a closed, drained mailbox ends a parked get with an error.
                assert isinstance(task.exception(), MailboxClosed)
                assert self.closed
                assert not self.model
                self.expected_received.append(-1)
                self.received.append(-1)
                if self.getters_expected:
                    self.getters_expected.popleft()

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def contents_match_the_model(self) -> None:
        if self.mailbox is None:
            return
        assert list(self.mailbox._items) == list(self.model)
        assert len(self.mailbox) <= self.mailbox.capacity
        assert self.mailbox.closed == self.closed

    @invariant()
    def getters_receive_in_fifo_order(self) -> None:
        assert self.received == self.expected_received
        assert all(not t.done() for t in self.getters)
        assert all(not t.done() for t, _ in self.putters)


MailboxMachine.TestCase.settings = machine_settings(max_examples=150, steps=40)
TestMailbox = MailboxMachine.TestCase


# --- examples kept as plain tests -----------------------------------------------------------


def test_items_queued_before_close_are_received_then_the_mailbox_reports_closed() -> None:
    mailbox: Mailbox[int] = Mailbox("box", 2)
    mailbox.put_nowait(1)
    mailbox.put_nowait(2)
    mailbox.close()
    mailbox.close()  # idempotent
    with pytest.raises(ActorStoppedError):
        mailbox.put_nowait(3)
    assert mailbox.get_nowait() == 1
    assert mailbox.get_nowait() == 2
    with pytest.raises(MailboxClosed):
        mailbox.get_nowait()
