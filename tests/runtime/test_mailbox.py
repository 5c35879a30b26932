"""The mailbox: bounded FIFO with the close semantics of a memory object stream."""

from __future__ import annotations

import anyio
import pytest

from relaybaton.errors import ActorStoppedError, ConfigError, MailboxFullError
from relaybaton.runtime._mailbox import Mailbox, MailboxClosed

pytestmark = pytest.mark.anyio


def test_items_come_out_in_the_order_they_went_in() -> None:
    mailbox: Mailbox[int] = Mailbox("a", capacity=10)
    for item in (3, 1, 2):
        mailbox.put_nowait(item)
    assert [mailbox.get_nowait() for _ in range(3)] == [3, 1, 2]


def test_a_full_mailbox_refuses_a_non_blocking_put_and_says_what_to_do() -> None:
    mailbox: Mailbox[int] = Mailbox("worker", capacity=2)
    mailbox.put_nowait(1)
    mailbox.put_nowait(2)
    with pytest.raises(MailboxFullError) as caught:
        mailbox.put_nowait(3)
    assert str(caught.value) == (
        "mailbox of actor 'worker' is full (2 messages); retry later or use the awaiting send"
    )
    assert (caught.value.actor, caught.value.capacity) == ("worker", 2)
    assert len(mailbox) == 2


def test_an_unbounded_put_goes_past_the_capacity() -> None:
    mailbox: Mailbox[int] = Mailbox("a", capacity=1)
    mailbox.put_nowait(1)
    mailbox.put_nowait(2, bounded=False)
    assert len(mailbox) == 2


def test_a_capacity_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="mailbox capacity must be at least 1, got 0"):
        Mailbox("a", capacity=0)


async def test_get_on_an_empty_mailbox_waits_for_a_put() -> None:
    mailbox: Mailbox[str] = Mailbox("a")
    got: list[str] = []

    async def receive() -> None:
        got.append(await mailbox.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        mailbox.put_nowait("hello")
    assert got == ["hello"]


async def test_put_waits_for_room_and_goes_in_when_an_item_is_taken() -> None:
    mailbox: Mailbox[int] = Mailbox("a", capacity=1)
    mailbox.put_nowait(1)
    done: list[int] = []

    async def send() -> None:
        await mailbox.put(2)
        done.append(2)

    async with anyio.create_task_group() as tg:
        tg.start_soon(send)
        await anyio.wait_all_tasks_blocked()
        assert done == []
        assert len(mailbox) == 1
        assert mailbox.get_nowait() == 1
        await anyio.wait_all_tasks_blocked()
        assert done == [2]
    assert mailbox.get_nowait() == 2


async def test_waiting_senders_get_room_in_the_order_they_came() -> None:
    mailbox: Mailbox[str] = Mailbox("a", capacity=1)
    mailbox.put_nowait("first")
    async with anyio.create_task_group() as tg:
        for name in ("second", "third"):
            tg.start_soon(mailbox.put, name)
            await anyio.wait_all_tasks_blocked()
        received = [mailbox.get_nowait()]
        await anyio.wait_all_tasks_blocked()
        received.append(mailbox.get_nowait())
        await anyio.wait_all_tasks_blocked()
        received.append(mailbox.get_nowait())
    assert received == ["first", "second", "third"]


async def test_a_cancelled_waiting_put_queues_nothing_and_passes_the_room_on() -> None:
    mailbox: Mailbox[str] = Mailbox("a", capacity=1)
    mailbox.put_nowait("queued")
    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()
        tg.start_soon(_put_in_scope, mailbox, "cancelled", scope)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(mailbox.put, "later")
        await anyio.wait_all_tasks_blocked()
        scope.cancel()
        await anyio.wait_all_tasks_blocked()
        assert mailbox.get_nowait() == "queued"
        await anyio.wait_all_tasks_blocked()
    assert mailbox.get_nowait() == "later"
    assert len(mailbox) == 0


async def _put_in_scope(mailbox: Mailbox[str], item: str, scope: anyio.CancelScope) -> None:
    with scope:
        await mailbox.put(item)


async def test_items_queued_before_close_are_still_received_then_get_raises() -> None:
    mailbox: Mailbox[int] = Mailbox("a")
    mailbox.put_nowait(1)
    mailbox.put_nowait(2)
    mailbox.close()
    assert mailbox.closed
    assert await mailbox.get() == 1
    assert mailbox.get_nowait() == 2
    with pytest.raises(MailboxClosed):
        mailbox.get_nowait()
    with pytest.raises(MailboxClosed):
        await mailbox.get()


def test_an_empty_open_mailbox_get_nowait_raises_index_error_not_closed() -> None:
    mailbox: Mailbox[int] = Mailbox("a")
    with pytest.raises(IndexError, match="mailbox is empty"):
        mailbox.get_nowait()


async def test_a_put_after_close_raises_actor_stopped_with_a_clear_message() -> None:
    mailbox: Mailbox[int] = Mailbox("billing")
    mailbox.close()
    expected = (
        "actor 'billing' is stopped and takes no more messages; "
        "send to the ref its supervisor or activation table gives you now"
    )
    with pytest.raises(ActorStoppedError) as caught:
        mailbox.put_nowait(1)
    assert str(caught.value) == expected
    with pytest.raises(ActorStoppedError, match="actor 'billing' is stopped"):
        await mailbox.put(1)
    assert len(mailbox) == 0


def test_close_is_idempotent() -> None:
    mailbox: Mailbox[int] = Mailbox("a")
    mailbox.put_nowait(1)
    mailbox.close()
    mailbox.close()
    assert mailbox.get_nowait() == 1


async def test_close_wakes_a_waiting_get_with_mailbox_closed() -> None:
    mailbox: Mailbox[int] = Mailbox("a")
    outcome: list[str] = []

    async def receive() -> None:
        try:
            await mailbox.get()
        except MailboxClosed:
            outcome.append("closed")

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        mailbox.close()
    assert outcome == ["closed"]


async def test_close_wakes_a_waiting_put_with_actor_stopped() -> None:
    mailbox: Mailbox[int] = Mailbox("a", capacity=1)
    mailbox.put_nowait(1)
    outcome: list[str] = []

    async def send() -> None:
        try:
            await mailbox.put(2)
        except ActorStoppedError:
            outcome.append("stopped")

    async with anyio.create_task_group() as tg:
        tg.start_soon(send)
        await anyio.wait_all_tasks_blocked()
        mailbox.close()
    assert outcome == ["stopped"]
    assert mailbox.get_nowait() == 1
    with pytest.raises(MailboxClosed):
        mailbox.get_nowait()


def test_drain_takes_everything_queued() -> None:
    mailbox: Mailbox[int] = Mailbox("a")
    for item in range(3):
        mailbox.put_nowait(item)
    assert mailbox.drain() == [0, 1, 2]
    assert len(mailbox) == 0
