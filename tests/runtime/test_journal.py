"""The journal's commits: one body per conversation, snapshots, and journals of older versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from relaybaton.runtime import Conversation, Journal
from relaybaton.runtime._journal_events import (
    Charged,
    JournalRecord,
    Opened,
    TurnStarted,
)
from relaybaton.runtime._store import EncodedRecord, Head, MemoryStore, WriteBatch
from relaybaton.stores import SqliteStore
from relaybaton.stores._sqlite import SCHEMA_VERSION
from relaybaton.testing import FakeClock

pytestmark = pytest.mark.anyio


def _charge(agent: str) -> Charged:
    return Charged(agent=agent, model="m", input_tokens=1, output_tokens=2, cost_usd=0.0)


def _journal(store: MemoryStore, **options: Any) -> Journal[Any]:
    journal: Journal[Any] = Journal(store, msgspec.Raw, clock=FakeClock(), **options)
    journal.start()
    return journal


def _kinds(journal: Journal[Any], store: MemoryStore, conversation_id: str) -> list[str]:
    bodies = [r.body for _, r in sorted(store.records[conversation_id].items())]
    return [str(type(r.event).__struct_config__.tag) for r in journal.decode(bodies)]


async def test_a_commit_keeps_each_conversations_records_in_one_body_in_order() -> None:
    store = MemoryStore()
    journal = _journal(store)
    a, b = Conversation(id="a", owner="x"), Conversation(id="b", owner="y")
    journal.record(a, Opened(owner="x"))
    journal.record(b, Opened(owner="y"))
    journal.record(a, _charge("x"))
    journal.record(a, TurnStarted(message_id="m1"))
    await journal.flush()
    await journal.aclose()
    assert store.transactions == 1
    assert list(store.records["a"]) == [1]  # one body, keyed by its first record's seq
    assert store.records["a"][1].kind == "opened"
    assert _kinds(journal, store, "a") == ["opened", "charged", "turn_started"]
    assert _kinds(journal, store, "b") == ["opened"]
    assert store.head_rows["a"].seq == 3


async def test_records_made_while_the_writer_gathers_share_one_commit() -> None:
    store = MemoryStore()
    journal = _journal(store, max_delay=0.05)
    a = Conversation(id="a", owner="x")
    journal.record(a, Opened(owner="x"))
    await anyio.wait_all_tasks_blocked()  # the writer now waits for the group to gather
    journal.record(a, _charge("x"))
    await journal.flush()
    await journal.aclose()
    assert store.transactions == 1
    assert _kinds(journal, store, "a") == ["opened", "charged"]


async def test_a_snapshot_starts_a_body_of_its_own_and_retention_prunes_those_before() -> None:
    store = MemoryStore()
    journal = _journal(store, snapshot_every=3)
    a = Conversation(id="a", owner="x")
    journal.record(a, Opened(owner="x"))
    await journal.flush()  # an earlier commit: a body that the snapshot covers whole
    for _ in range(4):
        journal.record(a, _charge("x"))
    await journal.flush()
    await journal.aclose()
    # seq 1-3, then the snapshot (4), then two more records in the snapshot's body
    assert list(store.records["a"]) == [4]
    assert _kinds(journal, store, "a") == ["snapshot", "charged", "charged"]
    loaded = await journal.load("a", entry="x")
    assert loaded is not None
    assert loaded.seq == a.seq == 6


async def test_without_retention_the_bodies_a_snapshot_covers_stay() -> None:
    store = MemoryStore()
    journal = _journal(store, snapshot_every=2, retention=False)
    a = Conversation(id="a", owner="x")
    for _ in range(3):
        journal.record(a, _charge("x"))
    await journal.flush()
    await journal.aclose()
    assert list(store.records["a"]) == [1, 3]
    assert _kinds(journal, store, "a") == ["charged", "charged", "snapshot", "charged"]


@pytest.mark.parametrize("encode", [msgspec.msgpack.encode, msgspec.json.encode])
async def test_a_journal_stored_one_record_per_body_still_loads(encode: Any) -> None:
    # What earlier versions wrote: each record alone in its body, MessagePack or JSON.
    events = [Opened(owner="x"), _charge("x"), _charge("x")]
    records = [
        JournalRecord(conversation_id="a", seq=seq, epoch=0, at=0.0, event=event)  # type: ignore[arg-type]
        for seq, event in enumerate(events, start=1)
    ]
    store = MemoryStore()
    batch = WriteBatch(
        records=[
            EncodedRecord(conversation_id="a", seq=r.seq, epoch=0, kind="", body=encode(r))
            for r in records
        ]
    )
    batch.heads["a"] = Head(
        conversation_id="a",
        seq=3,
        epoch=0,
        owner="x",
        status="active",
        unfinished=False,
        updated_at=0.0,
    )
    await store.write(batch)
    journal: Journal[Any] = Journal(store, msgspec.Raw, clock=FakeClock())
    assert journal.decode(await store.read("a")) == records
    loaded = await journal.load("a", entry="x")
    assert loaded is not None
    assert (loaded.owner, loaded.seq) == ("x", 3)
    assert loaded.ledger[("x", "m")].calls == 2


async def test_a_version_1_sqlite_journal_is_upgraded_and_its_bodies_still_load(
    tmp_path: Path,
) -> None:
    # A file an earlier relaybaton wrote: schema version 1, each record alone in its body.
    path = tmp_path / "old.db"
    await SqliteStore(path).aclose()
    record = JournalRecord(conversation_id="a", seq=1, epoch=0, at=0.0, event=Opened(owner="x"))  # type: ignore[arg-type]
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        raw.execute(
            "INSERT INTO records (conversation_id, seq, epoch, kind, body) VALUES (?, ?, ?, ?, ?)",
            ("a", 1, 0, "opened", msgspec.msgpack.encode(record)),
        )
    raw.close()
    store = SqliteStore(path)
    try:
        journal: Journal[Any] = Journal(store, msgspec.Raw, clock=FakeClock())
        assert journal.decode(await store.read("a")) == [record]
    finally:
        await store.aclose()
    with sqlite3.connect(path) as raw:
        (version,) = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    raw.close()
    assert int(version) == SCHEMA_VERSION == 2  # an older relaybaton now refuses the file
