"""One conformance suite for every journal store: memory, SQLite (each durability), Postgres.

The Postgres cases talk to the real server on 127.0.0.1:5432 (``RELAYBATON_TEST_POSTGRES_DSN``
overrides the address), each in a throwaway schema dropped afterwards. Where no server
answers they are skipped with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from relaybaton.errors import ConfigError, ConflictError, StaleEpochError, StoreError
from relaybaton.runtime import Durability, Store
from relaybaton.runtime._store import ApprovalRow, EncodedRecord, Head, MemoryStore, WriteBatch
from relaybaton.stores import SqliteStore, open_store
from relaybaton.stores._sqlite import SCHEMA_VERSION
from tests._postgres import PG_DSN, require_postgres

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.anyio


# --- building batches ---------------------------------------------------------------------


def body(conversation_id: str, seq: int, epoch: int) -> bytes:
    # A NUL and a byte that is not UTF-8: bodies are opaque bytes, not text.
    return f"{conversation_id}#{seq}@{epoch}".encode() + b"\x00\xff"


def head(
    conversation_id: str,
    seq: int,
    *,
    epoch: int = 1,
    unfinished: bool = False,
    updated_at: float = 0.0,
    owner: str | None = "triage",
) -> Head:
    return Head(
        conversation_id=conversation_id,
        seq=seq,
        epoch=epoch,
        owner=owner,
        status="active",
        unfinished=unfinished,
        updated_at=updated_at,
    )


def batch(
    conversation_id: str,
    seqs: list[int],
    *,
    epoch: int = 1,
    unfinished: bool = False,
    updated_at: float = 0.0,
) -> WriteBatch:
    return WriteBatch(
        records=[
            EncodedRecord(
                conversation_id=conversation_id,
                seq=seq,
                epoch=epoch,
                kind="event",
                body=body(conversation_id, seq, epoch),
            )
            for seq in seqs
        ],
        heads={
            conversation_id: head(
                conversation_id,
                max(seqs),
                epoch=epoch,
                unfinished=unfinished,
                updated_at=updated_at,
            )
        },
    )


def request(approval_id: str, conversation_id: str = "c1") -> ApprovalRow:
    return ApprovalRow(
        approval_id=approval_id,
        conversation_id=conversation_id,
        request=f'{{"tool":"refund","id":"{approval_id}"}}'.encode(),
    )


def decision(approval_id: str, verdict: str, conversation_id: str = "c1") -> ApprovalRow:
    # What the journal writes for ApprovalDecided: no request, only the decision.
    return ApprovalRow(
        approval_id=approval_id, conversation_id=conversation_id, request=b"", decision=verdict
    )


# --- the stores under test ----------------------------------------------------------------


async def drop_schema(schema: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@dataclass
class Backend:
    """Opens stores on one location (a file, a schema), and closes them all at the end."""

    name: str
    persistent: bool
    factory: Callable[[], Awaitable[Store]]
    opened: list[Store] = field(default_factory=list)
    location: str = ""

    async def open(self) -> Store:
        store = await self.factory()
        self.opened.append(store)
        return store


STORE_KINDS = [
    "memory",
    "sqlite-sync",
    "sqlite-batched",
    "sqlite-off",
    pytest.param("postgres", marks=pytest.mark.integration),
]
PERSISTENT_KINDS = STORE_KINDS[1:]


@pytest.fixture
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    kind: str = request.param
    cleanup: Callable[[], Awaitable[None]] | None = None
    if kind == "memory":
        memory = MemoryStore()

        async def same_memory() -> Store:
            return memory

        made = Backend(kind, persistent=False, factory=same_memory)
    elif kind.startswith("sqlite-"):
        path = tmp_path / "journal.db"
        durability = Durability(kind.removeprefix("sqlite-"))

        async def sqlite() -> Store:
            return SqliteStore(path, durability=durability)

        made = Backend(kind, persistent=True, factory=sqlite, location=str(path))
    else:
        require_postgres()
        from relaybaton.stores import PostgresStore

        schema = f"rb_test_{uuid.uuid4().hex[:12]}"

        async def postgres() -> Store:
            store = PostgresStore(PG_DSN, schema=schema, application_name=schema)
            await store.connect()
            return store

        async def drop() -> None:
            await drop_schema(schema)

        made = Backend(kind, persistent=True, factory=postgres, location=schema)
        cleanup = drop
    try:
        yield made
    finally:
        for store in made.opened:
            await store.aclose()
        if cleanup is not None:
            await cleanup()


@pytest.fixture
async def store(backend: Backend) -> Store:
    return await backend.open()


def every_store(test: Any) -> Any:
    return pytest.mark.parametrize("backend", STORE_KINDS, indirect=True)(test)


def persistent_stores(test: Any) -> Any:
    return pytest.mark.parametrize("backend", PERSISTENT_KINDS, indirect=True)(test)


# --- the protocol, for every store --------------------------------------------------------


@every_store
async def test_bodies_come_back_oldest_first_whatever_order_they_were_written_in(
    store: Store,
) -> None:
    first = batch("c1", [3, 1, 2])
    await store.write(first)
    await store.write(batch("c1", [5, 4]))
    await store.write(batch("other", [1]))

    assert await store.read("c1") == [body("c1", seq, 1) for seq in (1, 2, 3, 4, 5)]
    assert await store.read("other") == [body("other", 1, 1)]
    assert await store.read("nobody") == []


@every_store
async def test_writing_the_same_batch_again_gives_the_same_journal(store: Store) -> None:
    # A Postgres write is retried after a broken connection even if its commit landed.
    again = batch("c1", [1, 2])
    again.approvals.append(request("a1"))
    again.prune["c1"] = 1
    await store.write(again)
    await store.write(again)

    assert await store.read("c1") == [body("c1", 1, 1), body("c1", 2, 1)]
    assert [a.approval_id for a in await store.approvals()] == ["a1"]
    assert [h.seq for h in await store.heads()] == [2]


@every_store
async def test_a_newer_stored_epoch_refuses_an_older_writer_naming_both_epochs(
    store: Store,
) -> None:
    await store.write(batch("c1", [1], epoch=1))
    await store.write(batch("c1", [2], epoch=3))  # the baton moved on: a newer epoch
    await store.write(batch("c1", [3], epoch=3))  # the same epoch goes on writing

    with pytest.raises(StaleEpochError) as caught:
        await store.write(batch("c1", [4], epoch=2))

    assert caught.value.conversation_id == "c1"
    assert (caught.value.epoch, caught.value.current) == (2, 3)
    assert str(caught.value) == "conversation 'c1': epoch 2 is stale, current is 3"
    assert await store.read("c1") == [body("c1", 1, 1), body("c1", 2, 3), body("c1", 3, 3)]


@every_store
async def test_a_batch_refused_by_the_fence_writes_nothing_at_all(store: Store) -> None:
    await store.write(batch("held", [1, 2, 3], epoch=5))
    await store.write(WriteBatch(approvals=[request("before", "held")]))

    refused = batch("fresh", [1, 2])  # a new conversation: fine on its own
    stale = batch("held", [4], epoch=4)
    refused.records += stale.records
    refused.heads.update(stale.heads)
    refused.approvals += [request("during", "fresh"), decision("before", "approve", "held")]
    refused.prune["held"] = 3
    with pytest.raises(StaleEpochError, match="'held': epoch 4 is stale, current is 5"):
        await store.write(refused)

    assert await store.read("fresh") == []
    assert await store.read("held") == [body("held", s, 5) for s in (1, 2, 3)]
    assert [(h.conversation_id, h.seq, h.epoch) for h in await store.heads()] == [("held", 3, 5)]
    assert await store.approvals(pending_only=False) == [request("before", "held")]


@every_store
async def test_a_refused_batch_of_only_records_and_heads_writes_nothing_either(
    store: Store,
) -> None:
    await store.write(batch("held", [1], epoch=5))
    refused = batch("fresh", [1, 2])
    stale = batch("held", [2], epoch=4)
    refused.records += stale.records
    refused.heads.update(stale.heads)
    with pytest.raises(StaleEpochError, match="'held': epoch 4 is stale, current is 5"):
        await store.write(refused)

    assert await store.read("fresh") == []
    assert await store.read("held") == [body("held", 1, 5)]
    assert [(h.conversation_id, h.epoch) for h in await store.heads()] == [("held", 5)]


@every_store
async def test_bodies_of_any_length_and_bytes_come_back_exactly(store: Store) -> None:
    bodies = [b"", bytes(range(256)), b"\x00" * 5000, "é€𝄞".encode(), b"{}", b"\xff"]
    written = WriteBatch(
        records=[
            EncodedRecord(conversation_id=c, seq=1, epoch=1, kind="event", body=data)
            for c, data in zip("abcdef", bodies, strict=True)
        ],
        heads={c: head(c, 1) for c in "abcdef"},
    )
    await store.write(written)

    assert [await store.read(c) for c in "abcdef"] == [[data] for data in bodies]


@every_store
async def test_heads_list_every_conversation_or_only_those_with_an_unfinished_turn(
    store: Store,
) -> None:
    await store.write(batch("late", [1], unfinished=True, updated_at=30.0))
    await store.write(batch("done", [1], unfinished=False, updated_at=10.0))
    await store.write(batch("early", [1, 2], unfinished=True, updated_at=20.0))
    await store.write(batch("done", [2], unfinished=False, updated_at=40.0))

    every = await store.heads()
    assert [h.conversation_id for h in every] == ["early", "late", "done"]
    assert every[-1] == head("done", 2, updated_at=40.0)
    unfinished = await store.heads(unfinished_only=True)
    assert [h.conversation_id for h in unfinished] == ["early", "late"]
    assert unfinished[0] == head("early", 2, unfinished=True, updated_at=20.0)


@every_store
async def test_an_owner_of_none_is_kept_as_none(store: Store) -> None:
    in_flight = batch("c1", [1])
    in_flight.heads["c1"] = head("c1", 1, owner=None)  # a handoff in flight holds it
    await store.write(in_flight)

    assert (await store.heads())[0].owner is None


@every_store
async def test_an_approval_waits_until_decided_and_keeps_its_request(store: Store) -> None:
    await store.write(WriteBatch(approvals=[request("a1"), request("a2")]))
    await store.write(WriteBatch(approvals=[request("a3")]))
    assert [a.approval_id for a in await store.approvals()] == ["a1", "a2", "a3"]

    await store.write(WriteBatch(approvals=[decision("a2", "approve")]))

    assert await store.approvals() == [request("a1"), request("a3")]
    decided = await store.approvals(pending_only=False)
    assert [a.approval_id for a in decided] == ["a1", "a2", "a3"]  # oldest first, still
    assert decided[1].decision == "approve"
    assert decided[1].request == request("a2").request


@every_store
async def test_a_request_and_its_decision_in_one_batch_keep_both(store: Store) -> None:
    await store.write(WriteBatch(approvals=[request("a1"), decision("a1", "reject")]))

    assert await store.approvals() == []
    assert await store.approvals(pending_only=False) == [
        ApprovalRow(
            approval_id="a1",
            conversation_id="c1",
            request=request("a1").request,
            decision="reject",
        )
    ]


@every_store
async def test_one_approval_is_found_by_its_id_waiting_or_decided(store: Store) -> None:
    await store.write(WriteBatch(approvals=[request("a1"), request("a2", "c2")]))
    await store.write(WriteBatch(approvals=[decision("a2", "reject", "c2")]))

    assert await store.approval("a1") == request("a1")
    decided = await store.approval("a2")
    assert decided is not None
    assert (decided.conversation_id, decided.decision) == ("c2", "reject")
    assert decided.request == request("a2", "c2").request  # the decision kept the request
    assert await store.approval("a3") is None
    assert await store.approval("A1") is None  # ids are matched exactly, not by likeness


@every_store
async def test_a_decided_approval_refuses_another_decision_naming_the_first(
    store: Store,
) -> None:
    await store.write(WriteBatch(approvals=[request("a1")]))
    await store.write(WriteBatch(approvals=[decision("a1", "approve")]))
    later = batch("c1", [1], epoch=0)
    later.approvals += [decision("a1", "reject"), request("a2")]

    with pytest.raises(ConflictError) as refused:
        await store.write(later)

    assert "approval 'a1' of conversation 'c1' was decided already: approve" in str(refused.value)
    assert refused.value.changed == "approve"
    assert await store.read("c1") == []  # nothing of the refused batch
    [kept] = await store.approvals(pending_only=False)
    assert kept.decision == "approve"
    # The same decision written again (a retried batch) is no second decision.
    await store.write(WriteBatch(approvals=[decision("a1", "approve")]))
    assert (await store.approvals(pending_only=False))[0].decision == "approve"


@every_store
async def test_pruning_drops_only_that_conversations_records_older_than_the_snapshot(
    store: Store,
) -> None:
    await store.write(batch("c1", [1, 2, 3]))
    await store.write(batch("c2", [1, 2, 3]))
    with_snapshot = batch("c1", [4, 5])  # 5 plays the snapshot: it covers 1..4
    with_snapshot.prune["c1"] = 5
    await store.write(with_snapshot)

    assert await store.read("c1") == [body("c1", 5, 1)]
    assert await store.read("c2") == [body("c2", s, 1) for s in (1, 2, 3)]


@every_store
async def test_many_conversations_commit_in_one_batch(store: Store) -> None:
    group = WriteBatch()
    for n in range(300):
        one = batch(f"conv-{n:03}", [1, 2, 3, 4], updated_at=float(n), unfinished=n % 2 == 0)
        group.records += one.records
        group.heads.update(one.heads)
        group.approvals.append(request(f"ap-{n:03}", f"conv-{n:03}"))
    await store.write(group)

    assert len(await store.heads()) == 300
    assert len(await store.heads(unfinished_only=True)) == 150
    assert len(await store.approvals()) == 300
    for n in (0, 151, 299):
        assert await store.read(f"conv-{n:03}") == [body(f"conv-{n:03}", s, 1) for s in range(1, 5)]


@every_store
async def test_an_empty_batch_is_a_no_op(store: Store) -> None:
    await store.write(WriteBatch())

    assert await store.heads() == []
    assert await store.approvals(pending_only=False) == []


@every_store
async def test_aclose_is_idempotent(store: Store) -> None:
    await store.aclose()
    await store.aclose()


@persistent_stores
async def test_a_closed_store_refuses_work_with_a_clear_error(backend: Backend) -> None:
    store = await backend.open()
    await store.aclose()

    with pytest.raises(StoreError, match="is closed; open a new"):
        await store.write(batch("c1", [1]))
    with pytest.raises(StoreError, match="is closed; open a new"):
        await store.read("c1")


@persistent_stores
async def test_a_store_reopened_after_close_has_everything_it_committed(
    backend: Backend,
) -> None:
    first = await backend.open()
    written = batch("c1", [1, 2], unfinished=True, updated_at=5.0)
    written.approvals.append(request("a1"))
    await first.write(written)
    await first.aclose()

    second = await backend.open()

    assert await second.read("c1") == [body("c1", 1, 1), body("c1", 2, 1)]
    assert await second.heads(unfinished_only=True) == [
        head("c1", 2, unfinished=True, updated_at=5.0)
    ]
    assert await second.approvals() == [request("a1")]
    # The fence holds across reopening too.
    with pytest.raises(StaleEpochError):
        await second.write(batch("c1", [3], epoch=0))


@persistent_stores
async def test_two_stores_on_one_location_see_each_others_commits(backend: Backend) -> None:
    one, two = await backend.open(), await backend.open()

    await one.write(batch("c1", [1], epoch=1))
    await two.write(batch("c1", [2], epoch=2))  # another node took the baton

    with pytest.raises(StaleEpochError, match="epoch 1 is stale, current is 2"):
        await one.write(batch("c1", [3], epoch=1))
    assert await one.read("c1") == [body("c1", 1, 1), body("c1", 2, 2)]


# --- SQLite -------------------------------------------------------------------------------

_WRITER_SCRIPT = textwrap.dedent(
    """
    import sys
    import anyio
    from relaybaton.stores._sqlite import SqliteStore
    from relaybaton.runtime._store import ApprovalRow, EncodedRecord, Head, WriteBatch

    path, me, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    def record(cid, seq):
        return EncodedRecord(conversation_id=cid, seq=seq, epoch=1, kind="e", body=b"%d" % seq)

    def head(cid, seq):
        return Head(conversation_id=cid, seq=seq, epoch=1, owner=None, status="active",
                    unfinished=False, updated_at=float(seq))

    async def main():
        store = SqliteStore(path, durability="sync", busy_timeout=20)
        for i in range(rounds):
            own = f"p{me}-{i}"
            shared_seq = 2 * i + me  # the two processes interleave in one conversation
            await store.write(WriteBatch(
                records=[record(own, 1), record(own, 2), record("shared", shared_seq)],
                heads={own: head(own, 2), "shared": head("shared", shared_seq)},
                approvals=[ApprovalRow(approval_id=own, conversation_id=own, request=b"r")],
            ))
        await store.aclose()

    anyio.run(main)
    """
)


async def test_two_processes_writing_one_sqlite_file_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    rounds = 400
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    results: dict[int, Any] = {}

    async def writer(me: int) -> None:
        results[me] = await anyio.run_process(
            [sys.executable, "-c", _WRITER_SCRIPT, str(path), str(me), str(rounds)],
            env=env,
            check=False,
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer, 0)
        tg.start_soon(writer, 1)

    for me in (0, 1):
        assert results[me].returncode == 0, results[me].stderr.decode()
    store = SqliteStore(path)
    try:
        assert await store.read("shared") == [b"%d" % seq for seq in range(2 * rounds)]
        assert len(await store.heads()) == 2 * rounds + 1
        assert len(await store.approvals()) == 2 * rounds
        assert await store.read("p1-399") == [b"1", b"2"]
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("durability", "expected"),
    [(Durability.SYNC, 2), (Durability.BATCHED, 1), (Durability.OFF, 0)],
)
async def test_sqlite_flushes_to_disk_as_the_durability_mode_says(
    tmp_path: Path, durability: Durability, expected: int
) -> None:
    store = SqliteStore(tmp_path / "j.db", durability=durability)
    try:
        writer = store._writer  # the setting is per connection: ask the one that writes
        assert writer.execute("PRAGMA synchronous").fetchone() == (expected,)
        assert writer.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        await store.aclose()


async def test_sqlite_reads_and_the_event_loop_go_on_while_a_write_waits_for_the_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    store = SqliteStore(path, busy_timeout=10)
    await store.write(batch("c1", [1]))
    other_process = sqlite3.connect(path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")  # holds the write lock
    written = anyio.Event()

    async def write() -> None:
        await store.write(batch("c1", [2]))
        written.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            # The read runs beside the held lock (WAL), in the loop the write must not block.
            assert await store.read("c1") == [body("c1", 1, 1)]
            assert not written.is_set()
            other_process.execute("COMMIT")
        assert await store.read("c1") == [body("c1", 1, 1), body("c1", 2, 1)]
    finally:
        other_process.close()
        await store.aclose()


async def test_sqlite_refuses_a_journal_written_by_a_newer_relaybaton(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await SqliteStore(path).aclose()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    raw.close()

    with pytest.raises(StoreError) as caught:
        SqliteStore(path)
    assert str(caught.value) == (
        f"journal {str(path)!r} has schema version {SCHEMA_VERSION + 1}, this relaybaton"
        f" knows versions up to {SCHEMA_VERSION}: upgrade relaybaton, or point it at another file"
    )


async def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a database, just some text long enough to fill a header")

    with pytest.raises(
        StoreError, match=r"cannot open the journal at .*notes\.txt.*not a database"
    ):
        SqliteStore(path)


async def test_sqlite_asks_for_a_file_not_memory() -> None:
    with pytest.raises(ConfigError, match="use MemoryStore"):
        SqliteStore(":memory:")


# --- PostgreSQL ---------------------------------------------------------------------------


async def _kill_backends(application_name: str) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        )
        return len(await cur.fetchall())


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_postgres_writes_and_reads_again_after_its_backends_are_killed(
    backend: Backend,
) -> None:
    from relaybaton.stores import PostgresStore

    store = await backend.open()
    assert isinstance(store, PostgresStore)
    await store.write(batch("c1", [1, 2]))
    assert await store.read("c1") == [body("c1", 1, 1), body("c1", 2, 1)]

    assert await _kill_backends(backend.location) == 2  # the writer and the reader

    await store.write(batch("c1", [3]))
    assert await store.read("c1") == [body("c1", s, 1) for s in (1, 2, 3)]
    assert store.reconnects == 2
    with pytest.raises(StaleEpochError):  # and the fence still holds on the new connection
        await store.write(batch("c1", [4], epoch=0))


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_postgres_writers_racing_on_new_conversations_never_let_the_older_epoch_win(
    backend: Backend,
) -> None:
    older, newer = await backend.open(), await backend.open()
    refused: list[str] = []

    async def write(store: Store, conversation_id: str, epoch: int) -> None:
        try:
            await store.write(batch(conversation_id, [epoch], epoch=epoch))
        except StaleEpochError as exc:
            refused.append(exc.conversation_id)

    async with anyio.create_task_group() as tg:
        for n in range(40):
            tg.start_soon(write, older, f"c{n}", 1)
            tg.start_soon(write, newer, f"c{n}", 2)

    heads = await older.heads()
    assert len(heads) == 40
    assert {h.epoch for h in heads} == {2}
    for n in range(40):
        stored = await newer.read(f"c{n}")
        # Either the older writer came first (and its record stays) or it was refused.
        assert stored in ([body(f"c{n}", 1, 1), body(f"c{n}", 2, 2)], [body(f"c{n}", 2, 2)])
        assert (len(stored) == 1) == (f"c{n}" in refused)


@pytest.mark.integration
async def test_postgres_refuses_a_schema_written_by_a_newer_relaybaton() -> None:
    require_postgres()
    import psycopg

    from relaybaton.stores import PostgresStore
    from relaybaton.stores._postgres import SCHEMA_VERSION as PG_VERSION

    schema = f"rb_test_{uuid.uuid4().hex[:12]}"
    try:
        store = PostgresStore(PG_DSN, schema=schema)
        await store.connect()
        await store.aclose()
        async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
            await conn.execute(f"UPDATE {schema}.meta SET value = '{PG_VERSION + 1}'")
        again = PostgresStore(PG_DSN, schema=schema)
        with pytest.raises(StoreError, match=f"schema version {PG_VERSION + 1}, this relaybaton"):
            await again.connect()
        await again.aclose()
    finally:
        await drop_schema(schema)


async def test_postgres_reports_a_server_that_does_not_answer_without_the_password() -> None:
    pytest.importorskip("psycopg")
    from relaybaton.errors import StoreUnavailableError
    from relaybaton.stores import PostgresStore

    store = PostgresStore("postgresql://me:s3cret@127.0.0.1:1/journal", connect_timeout=2)
    with pytest.raises(StoreUnavailableError) as caught:
        await store.write(batch("c1", [1]))
    await store.aclose()

    assert str(caught.value).startswith(
        "PostgreSQL journal at postgresql://127.0.0.1:1/journal schema relaybaton is not answering"
    )
    assert "s3cret" not in str(caught.value)
    assert isinstance(caught.value, ConnectionError)


async def test_postgres_schema_must_be_a_plain_identifier() -> None:
    pytest.importorskip("psycopg")
    from relaybaton.stores import PostgresStore

    with pytest.raises(ConfigError, match=r"lower-case identifier .*got 'x; drop'"):
        PostgresStore(PG_DSN, schema="x; drop")


# --- open_store ---------------------------------------------------------------------------


async def test_open_store_reads_memory_paths_and_sqlite_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_store("memory:") as memory:
        assert isinstance(memory, MemoryStore)
    async with open_store(tmp_path / "a.db", durability="sync") as by_path:
        assert isinstance(by_path, SqliteStore)
        assert by_path.durability is Durability.SYNC
    async with open_store(f"sqlite:///{tmp_path}/b.db") as absolute:
        assert isinstance(absolute, SqliteStore)
        assert Path(absolute.path) == tmp_path / "b.db"
    monkeypatch.chdir(tmp_path)
    async with open_store("sqlite:///c.db") as relative:
        await relative.write(batch("c1", [1]))
    assert (tmp_path / "c.db").exists()


@pytest.mark.parametrize("target", ["mysql://db/x", "", "sqlite:", "memory", "redis://h"])
async def test_open_store_names_the_accepted_forms_for_anything_else(target: str) -> None:
    with pytest.raises(ConfigError) as caught:
        async with open_store(target):
            pass
    assert str(caught.value) == (
        f"cannot open a journal store at {target!r}: expected a file path or"
        " sqlite:///relative/path or sqlite:////absolute/path (SQLite),"
        " postgresql://user@host:port/db (PostgreSQL), or memory: (in memory, for tests)"
    )


@pytest.mark.integration
async def test_open_store_connects_to_postgres_and_creates_the_schema() -> None:
    require_postgres()
    from relaybaton.stores import PostgresStore

    schema = f"rb_test_{uuid.uuid4().hex[:12]}"
    try:
        async with open_store(PG_DSN, durability="off", schema=schema) as store:
            assert isinstance(store, PostgresStore)
            await store.write(batch("c1", [1]))
            assert await store.read("c1") == [body("c1", 1, 1)]
    finally:
        await drop_schema(schema)
