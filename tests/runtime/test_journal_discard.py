"""``Journal.discard``: a lost conversation's uncommitted records are never written, and
whoever waited for them hears the refusal instead of a commit that did not happen."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
import pytest

from relaybaton.errors import FencedWriteError
from relaybaton.runtime import Conversation, Durability, Journal
from relaybaton.runtime._journal_events import Opened, TurnStarted
from relaybaton.runtime._store import MemoryStore
from relaybaton.testing import FakeClock

pytestmark = pytest.mark.anyio


def _journal(store: MemoryStore) -> Journal[Any]:
    journal: Journal[Any] = Journal(
        store, msgspec.Raw, clock=FakeClock(), durability=Durability.SYNC
    )
    journal.start()
    return journal


def _refusal(*conversation_ids: str) -> FencedWriteError:
    return FencedWriteError(store="memory", conversation_ids=conversation_ids, partitions=(3,))


async def test_discarded_records_are_not_written_and_their_callbacks_hear_the_refusal() -> None:
    store = MemoryStore()
    journal = _journal(store)
    lost, kept = Conversation(id="lost", owner="x"), Conversation(id="kept", owner="y")
    journal.record(lost, Opened(owner="x"))
    journal.record(kept, Opened(owner="y"))
    outcomes: dict[str, str] = {}
    for conversation_id in ("lost", "kept"):
        journal.after_commit(
            lambda c=conversation_id: outcomes.__setitem__(c, "committed"),  # type: ignore[misc]
            conversation_id=conversation_id,
            refused=lambda _e, c=conversation_id: outcomes.__setitem__(c, "refused"),  # type: ignore[misc]
        )
    journal.discard(["lost"], _refusal("lost"))
    with anyio.fail_after(2):
        await journal.flush()
    await journal.aclose()
    assert "lost" not in store.records
    assert "kept" in store.records
    assert outcomes == {"lost": "refused", "kept": "committed"}


async def test_waiting_for_nothing_but_discarded_records_does_not_hang() -> None:
    store = MemoryStore()
    journal = _journal(store)
    lost = Conversation(id="lost", owner="x")
    journal.record(lost, Opened(owner="x"))
    journal.record(lost, TurnStarted(message_id="m1"))
    journal.discard(["lost"], _refusal("lost"))
    with anyio.fail_after(2), pytest.raises(FencedWriteError):
        await journal.flushed("lost")
    with anyio.fail_after(2):
        await journal.flush()
    assert store.records == {}
    assert store.transactions == 0
    # Once the conversation is this node's again (reloaded), its new records are written.
    journal.forget_fenced(["lost"])
    again = Conversation(id="lost", owner="x")
    journal.record(again, Opened(owner="x"))
    with anyio.fail_after(2):
        await journal.flushed("lost")
    await journal.aclose()
    assert list(store.records["lost"]) == [1]
