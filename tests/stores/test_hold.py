"""The hold a writing process takes on its store: one holder, named to whoever comes second.

In one process, two holds on one store behave as two processes would: ``flock`` locks
belong to open files, not processes, and each PostgreSQL hold has its own session.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from relaybaton.errors import ConfigError, StoreInUseError
from relaybaton.stores._hold import HolderInfo, hold_store, lock_path_of, read_holder
from tests._postgres import PG_DSN, drop_schema, require_postgres, throwaway_schema

pytestmark = pytest.mark.anyio


def _me(command: str) -> HolderInfo:
    return HolderInfo.of_this_process(command)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    require_postgres()
    schema = throwaway_schema()
    yield schema
    drop_schema(schema)


async def test_a_second_hold_on_a_sqlite_store_is_refused_naming_the_first(tmp_path: Path) -> None:
    db = str(tmp_path / "journal.db")
    async with hold_store(db, _me("relaybaton serve flow.toml")) as first:
        assert first is not None
        await first.announce("http://127.0.0.1:8123")
        with pytest.raises(StoreInUseError) as refused:
            async with hold_store(db, _me("relaybaton resume flow.toml"), wait=0.1):
                pytest.fail("two holders at once")
    message = str(refused.value)
    assert f"journal store {db} is in use by `relaybaton serve flow.toml`" in message
    assert f"pid {os.getpid()} on {socket.gethostname()}" in message
    assert "serving http://127.0.0.1:8123" in message
    assert "--cluster nats://" in message
    assert refused.value.holder["address"] == "http://127.0.0.1:8123"
    assert refused.value.holder["command"] == "relaybaton serve flow.toml"


async def test_a_released_sqlite_hold_lets_the_next_process_in_and_names_nobody(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "journal.db")
    async with hold_store(db, _me("relaybaton run")) as hold:
        assert hold is not None
        described = msgspec.json.decode(lock_path_of(Path(db)).read_bytes(), type=HolderInfo)
        assert described.command == "relaybaton run"
        assert described.pid == os.getpid()
    assert lock_path_of(Path(db)).read_bytes() == b""  # nobody described once released
    async with hold_store(db, _me("relaybaton serve")) as again:
        assert again is not None
        assert again.holder.command == "relaybaton serve"


async def test_a_sqlite_url_and_its_path_are_one_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with hold_store("journal.db", _me("relaybaton serve")):
        with pytest.raises(StoreInUseError):
            async with hold_store("sqlite:///journal.db", _me("relaybaton run"), wait=0.1):
                pytest.fail("two holders at once")


async def test_a_hold_in_a_missing_folder_says_the_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the store's folder must exist"):
        async with hold_store(str(tmp_path / "nowhere" / "j.db"), _me("relaybaton serve")):
            pytest.fail("held a store in a folder that does not exist")


async def test_a_description_left_by_a_holder_that_died_names_nobody(tmp_path: Path) -> None:
    db = str(tmp_path / "journal.db")
    gone = await _exited_pid()
    left = HolderInfo(pid=gone, host=socket.gethostname(), command="relaybaton serve", since=1.0)
    lock_path_of(Path(db)).write_bytes(msgspec.json.encode(left))  # as a SIGKILL leaves it
    assert await read_holder(db) is None
    async with hold_store(db, _me("relaybaton resume")) as hold:
        assert hold is not None
        assert await read_holder(db) == hold.holder


async def _exited_pid() -> int:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await process.wait()
    return process.pid


async def test_memory_stores_are_private_to_a_process_and_need_no_hold() -> None:
    async with hold_store("memory:", _me("relaybaton serve")) as hold:
        assert hold is None


@pytest.mark.integration
async def test_a_second_hold_on_a_postgres_store_is_refused_naming_the_first(
    pg_schema: str,
) -> None:
    async with hold_store(PG_DSN, _me("relaybaton serve a.toml"), schema=pg_schema) as first:
        assert first is not None
        await first.announce("http://127.0.0.1:9000")
        assert await read_holder(PG_DSN, schema=pg_schema) == first.holder
        with pytest.raises(StoreInUseError) as refused:
            async with hold_store(
                PG_DSN, _me("relaybaton serve b.toml"), schema=pg_schema, wait=0.1
            ):
                pytest.fail("two holders at once")
        # Another schema on the same database is another store.
        other = throwaway_schema()
        try:
            async with hold_store(PG_DSN, _me("relaybaton run"), schema=other) as beside:
                assert beside is not None
        finally:
            drop_schema(other)
    message = str(refused.value)
    assert f"schema {pg_schema} is in use by `relaybaton serve a.toml`" in message
    assert "serving http://127.0.0.1:9000" in message
    assert "--cluster nats://" in message
    async with hold_store(PG_DSN, _me("relaybaton serve b.toml"), schema=pg_schema) as second:
        assert second is not None


@pytest.mark.integration
async def test_a_postgres_hold_goes_with_its_session_and_a_row_left_behind_names_nobody(
    pg_schema: str,
) -> None:
    import psycopg

    from relaybaton.stores._hold_postgres import PostgresHold

    async with hold_store(PG_DSN, _me("relaybaton serve"), schema=pg_schema) as first:
        assert isinstance(first, PostgresHold)
        conn = first._conn
        assert conn is not None
        backend = conn.info.backend_pid
        # The session ends as a crashed process's would: from outside, without a goodbye.
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (backend,))
            rows = admin.execute(f'SELECT backend_pid FROM "{pg_schema}".store_holder').fetchall()
        assert rows == [(backend,)]  # the row is still there, naming a session that is gone
        assert await read_holder(PG_DSN, schema=pg_schema) is None
        async with hold_store(
            PG_DSN, _me("relaybaton resume"), schema=pg_schema, wait=2.0
        ) as next_:
            assert next_ is not None
            assert next_.holder.command == "relaybaton resume"
            with pytest.raises(StoreInUseError, match="`relaybaton resume`"):
                async with hold_store(PG_DSN, _me("relaybaton run"), schema=pg_schema, wait=0.1):
                    pytest.fail("two holders at once")


@pytest.mark.integration
async def test_a_postgres_hold_whose_session_broke_takes_the_lock_again_or_knows_it_lost_it(
    pg_schema: str,
) -> None:
    import psycopg

    from relaybaton.stores._hold_postgres import PostgresHold

    def end_session(hold: PostgresHold) -> None:
        assert hold._conn is not None
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (hold._conn.info.backend_pid,))

    async with hold_store(PG_DSN, _me("relaybaton serve"), schema=pg_schema) as first:
        assert isinstance(first, PostgresHold)
        end_session(first)  # as a restart of the server does
        await first.check()
        assert not first.lost.is_set()
        assert await read_holder(PG_DSN, schema=pg_schema) == first.holder  # held again
        end_session(first)
        async with hold_store(PG_DSN, _me("relaybaton resume"), schema=pg_schema):
            await first.check()  # someone else got in while its session was down
            assert first.lost.is_set()
