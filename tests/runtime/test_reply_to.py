"""A message's reply address is journaled with it: a runtime that reads the turn back knows
where its result goes, and is told of it before the turn continues."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from relaybaton import Agent, open_runtime
from relaybaton.runtime import Conversation, Journal
from relaybaton.runtime._journal_events import Accepted, JournalRecord
from relaybaton.runtime._store import EncodedRecord, Head, MemoryStore, WriteBatch
from relaybaton.testing import FakeClock, ScriptedModel

pytestmark = pytest.mark.anyio

AGENT = Agent(name="assistant", instructions="Answer.", model="general")


@pytest.mark.parametrize("snapshot_every", [1, 200])  # read from a snapshot, or folded
async def test_an_unfinished_turns_reply_address_is_read_back_and_announced(
    snapshot_every: int,
) -> None:
    store = MemoryStore()
    held = ScriptedModel(lambda _: "ok", gate=asyncio.Event())  # the turn stays unfinished
    async with open_runtime(
        AGENT, models=held, store=store, durability="sync", snapshot_every=snapshot_every
    ) as first:
        await first.accept("c1", "one", message_id="m1", reply_to="inbox.7")
        await first.accept("c1", "two", message_id="m2", reply_to="inbox.8")  # queued
        await first.accept("c1", "three", message_id="m3")  # a caller that waits itself
        active = first.conversation("c1")
        assert active is not None
        assert active.active is not None
        assert active.active.reply_to == "inbox.7"
        await first.conversations.journal.flush()  # type: ignore[union-attr]

        seen: list[list[tuple[str, str | None]]] = []

        def note(conversation: Conversation) -> None:
            turns = [conversation.active, *conversation.inbox]
            seen.append([(t.message_id, t.reply_to) for t in turns if t is not None])

        again = ScriptedModel(lambda _: "ok", gate=asyncio.Event())
        async with open_runtime(AGENT, models=again, store=store, resume=False) as second:
            second.conversations.restore_listeners.append(note)
            await second.conversations.load("c1")
            again.gate.set()  # type: ignore[union-attr]  # (no grace to wait out on exit)
        held.gate.set()  # type: ignore[union-attr]
        assert seen == [[("m1", "inbox.7"), ("m2", "inbox.8"), ("m3", None)]]


async def test_an_accepted_record_written_before_reply_addresses_still_loads() -> None:
    class OldAccepted(msgspec.Struct, tag="accepted", kw_only=True):  # no reply_to field
        message_id: str
        item: dict[str, Any]
        started: bool = False
        opened_by: str | None = None
        user: str | None = None

    record = JournalRecord(
        conversation_id="a",
        seq=1,
        epoch=0,
        at=0.0,
        event=OldAccepted(message_id="m1", item={}, started=True, opened_by="x"),  # type: ignore[arg-type]
    )
    store = MemoryStore()
    batch = WriteBatch(
        records=[
            EncodedRecord(
                conversation_id="a", seq=1, epoch=0, kind="", body=msgspec.msgpack.encode(record)
            )
        ]
    )
    batch.heads["a"] = Head(
        conversation_id="a",
        seq=1,
        epoch=0,
        owner="x",
        status="active",
        unfinished=True,
        updated_at=0.0,
    )
    await store.write(batch)
    journal: Journal[Any] = Journal(store, msgspec.Raw, clock=FakeClock())
    [decoded] = journal.decode(await store.read("a"))
    assert isinstance(decoded.event, Accepted)
    assert decoded.event.reply_to is None
    loaded = await journal.load("a", entry="x")
    assert loaded is not None
    assert loaded.active is not None
    assert (loaded.active.message_id, loaded.active.reply_to) == ("m1", None)
