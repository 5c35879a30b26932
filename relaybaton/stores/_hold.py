"""One process per store outside cluster mode: the hold a writing process takes on its store.

Two processes that continue conversations from one journal overwrite each other's records
(each believes it owns every conversation it loaded), so a process that writes takes an
exclusive hold first, and a second one is refused at start-up with a message naming the
first. Readers take no hold: the stores let them read beside a writer.

- SQLite: ``flock`` on a lock file beside the database (``<db>.lock``), which holds the
  holder's description as JSON. The kernel drops the lock when the process ends, however
  it ends, so a crash never leaves the store held.
- PostgreSQL: a session advisory lock on a connection of its own, kept for the process's
  lifetime, plus a row in the store's schema (``store_holder``) describing the holder. The
  lock, not the row, decides: a crashed holder's session ends, its lock goes with it, and a
  row left behind is overwritten by the next holder (``_hold_postgres.py``).

A cluster node does not take this hold: there, leases per partition and epochs fence writers.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, final

import anyio
import msgspec
import structlog

from relaybaton.errors import ConfigError, StoreInUseError
from relaybaton.stores._factory import sqlite_path

__all__ = [
    "HolderInfo",
    "StoreHold",
    "hold_store",
    "lock_path_of",
    "read_holder",
    "refusal",
]

_log = structlog.get_logger("relaybaton.stores")

# How long a second process keeps trying before it reports the holder: long enough to
# ride out a holder that is between taking the lock and writing its description, or one
# whose death the database has not noticed yet; short enough for a clear refusal.
DEFAULT_WAIT_S = 3.0
_RETRY_S = 0.02


class HolderInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Who holds a store: enough for a person to find the process, and for the CLI to
    reach the service it runs (``address``: its HTTP base URL, once it listens)."""

    pid: int
    host: str
    command: str
    since: float
    address: str | None = None

    @classmethod
    def of_this_process(cls, command: str) -> HolderInfo:
        """This process, holding from now on, running ``command``."""
        return cls(pid=os.getpid(), host=socket.gethostname(), command=command, since=time.time())

    def describe(self) -> str:
        """One phrase for messages: the command, pid, host, since when, and its address."""
        since = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%S")
        serving = f", serving {self.address}" if self.address else ""
        return f"`{self.command}` (pid {self.pid} on {self.host}, since {since} UTC{serving})"

    def is_dead_here(self) -> bool:
        """Whether this holder ran on this machine and its process is gone."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, someone else's
            return False
        return False


class StoreHold(Protocol):
    """A hold taken: ``announce`` adds the service's address once it listens; ``lost`` is
    set if the hold went to another process (a PostgreSQL session that broke)."""

    where: str
    holder: HolderInfo
    lost: anyio.Event

    async def announce(self, address: str) -> None:
        """Record the HTTP address at which the holder takes decisions."""
        ...


def refusal(where: str, holder: HolderInfo | None) -> StoreInUseError:
    """The error for a store another process holds: who holds it, and the ways out."""
    who = holder.describe() if holder is not None else "another process (it did not say which)"
    return StoreInUseError(
        f"journal store {where} is in use by {who}. Outside cluster mode one process serves "
        "a store: stop that process, point --store at another store, or run many nodes on "
        "one PostgreSQL store with --cluster nats://HOST:4222",
        store=where,
        holder=msgspec.structs.asdict(holder) if holder is not None else {},
    )


@asynccontextmanager
async def hold_store(
    location: str,
    holder: HolderInfo,
    *,
    schema: str = "relaybaton",
    wait: float = DEFAULT_WAIT_S,
) -> AsyncIterator[StoreHold | None]:
    """Hold the store at ``location`` (as ``open_store`` takes it) for the ``async with``.

    Yields None for ``memory:``, which no other process can reach.

    Raises:
        StoreInUseError: another process holds it (the message names it and the fixes).
        ConfigError: the lock cannot be made (a missing folder, a bad address).
        StoreUnavailableError: PostgreSQL does not answer.
    """
    if location == "memory:":
        yield None
    elif location.startswith(("postgresql://", "postgres://")):
        from relaybaton.stores._hold_postgres import hold_postgres  # noqa: PLC0415 - psycopg

        async with hold_postgres(location, schema, holder, wait=wait) as hold:
            yield hold
    else:
        async with _hold_file(sqlite_path(location), holder, wait=wait) as hold:
            yield hold


def lock_path_of(database: Path) -> Path:
    """The lock file beside a SQLite database (SQLite's own are ``-wal`` and ``-shm``)."""
    return database.with_name(database.name + ".lock")


@final
class _FileHold:
    """An exclusive ``flock`` on the lock file; the file says who holds it."""

    def __init__(self, database: Path, fd: int, holder: HolderInfo) -> None:
        self.where = str(database)
        self.path = lock_path_of(database)
        self.holder = holder
        self.lost = anyio.Event()  # never set: a flock stays until the process lets it go
        self._fd = fd

    def write(self) -> None:
        # New bytes first, then cut the old tail: a reader never finds the file empty while
        # it is held (it may catch a mix for an instant, which does not decode: it reads again).
        data = msgspec.json.encode(self.holder)
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    async def announce(self, address: str) -> None:
        self.holder = msgspec.structs.replace(self.holder, address=address)
        self.write()

    def release(self) -> None:
        # Emptied before unlocking, so nobody reads a holder that is gone. The file stays:
        # removing it would let two processes lock two different files of one name.
        try:
            os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)  # closing the last descriptor releases the flock


@asynccontextmanager
async def _hold_file(
    database: Path, holder: HolderInfo, *, wait: float
) -> AsyncIterator[_FileHold]:
    path = lock_path_of(database)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(
            f"cannot make the lock file {str(path)!r} of the journal store: "
            f"{exc.strerror or exc}; the store's folder must exist and be writable"
        ) from exc
    try:
        await _lock(fd, path, str(database), wait)
    except BaseException:
        os.close(fd)
        raise
    hold = _FileHold(database, fd, holder)
    try:
        hold.write()
        yield hold
    finally:
        hold.release()


async def _lock(fd: int, path: Path, where: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            return
        holder = _read_holder(path)
        # A holder that is gone left its description behind, and whoever holds the lock
        # (someone looking who holds it, with a shared lock for an instant) lets go at once.
        if holder is not None and not holder.is_dead_here():
            raise refusal(where, holder)
        if time.monotonic() > deadline:  # held, yet never described: say so anyway
            raise refusal(where, holder)
        await anyio.sleep(_RETRY_S)


async def read_holder(location: str, *, schema: str = "relaybaton") -> HolderInfo | None:
    """Who holds the store at ``location`` now, without holding it (None: nobody).

    Raises:
        ConfigError: a bad address. StoreUnavailableError: PostgreSQL does not answer.
    """
    if location == "memory:":
        return None
    if location.startswith(("postgresql://", "postgres://")):
        from relaybaton.stores._hold_postgres import read_postgres_holder  # noqa: PLC0415

        return await read_postgres_holder(location, schema)
    path = lock_path_of(sqlite_path(location))
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None  # never held
    except OSError as exc:
        raise ConfigError(f"cannot read the lock file {str(path)!r}: {exc.strerror}") from exc
    try:
        # A shared lock we can get means no exclusive holder: whatever the file says is
        # left from one that is gone.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(path)
    finally:
        os.close(fd)
    return None


def _read_holder(path: Path) -> HolderInfo | None:
    """The holder the lock file describes; None while it is being written or emptied."""
    try:
        data = path.read_bytes()
        return msgspec.json.decode(data, type=HolderInfo) if data else None
    except (OSError, msgspec.DecodeError):
        return None
