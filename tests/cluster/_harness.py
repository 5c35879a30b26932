"""Real ``relaybaton serve`` processes on the example flow, a database of their own, faults.

Each node is a child process (``python -m relaybaton serve``) on a port it picks itself
(``--port 0``; the harness reads the address from its banner, so start-up is awaited, not
slept on). The journal is a PostgreSQL database made for the run and dropped after it, so
runs never share a journal; in cluster mode the nodes also get a NATS prefix of their own.
The flow is a copy of ``examples/customer_service.toml`` in the run's folder, so its memory
file is the run's too. A node's output goes to ``node-N.log`` in that folder.

Faults are signals to a node's process: ``SIGKILL`` (a crash), ``SIGSTOP``/``SIGCONT`` (a
pause past the lease), ``SIGTERM`` (a graceful stop).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import nats
import psycopg
from nats.js.errors import KeyNotFoundError

__all__ = ["EXAMPLES", "Cluster", "Node", "Nodes", "throwaway_database"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_BANNER = re.compile(rb"serving flow .* on (http://\S+)")


@asynccontextmanager
async def throwaway_database(admin_dsn: str) -> AsyncIterator[str]:
    """A fresh database on the server ``admin_dsn`` names, dropped (forcibly) afterwards."""
    name = f"rb_fault_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    # A URL, not key=value pairs: `serve --store` tells PostgreSQL from SQLite by the scheme.
    base, _, _ = admin_dsn.rpartition("/")
    if not admin_dsn.startswith(("postgresql://", "postgres://")) or "?" in admin_dsn:
        raise ValueError(f"expected a postgresql://host:port/db URL, got {admin_dsn!r}")
    try:
        yield f"{base}/{name}"
    finally:
        async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Node:
    """One ``relaybaton serve`` process."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.url = ""
        self.process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self.paused = False
        self.reachable = True
        self._watches: list[tuple[bytes, asyncio.Future[bytes]]] = []

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None and not self.paused

    async def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait for its banner (it listens once it printed it)."""
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log = self.log_path.open("ab")
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pump = asyncio.create_task(self._copy_output(log, ready))
        try:
            self.url = await asyncio.wait_for(ready, timeout)
        except (TimeoutError, EOFError) as exc:
            await self.signal(signal.SIGKILL)
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"node {self.name} did not start: {exc!r}\n{tail}") from exc
        self.paused = False

    async def _copy_output(self, log: object, ready: asyncio.Future[str]) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        with log:  # type: ignore[attr-defined]
            async for line in self.process.stdout:
                log.write(line)  # type: ignore[attr-defined]
                log.flush()  # type: ignore[attr-defined]
                if not ready.done() and (match := _BANNER.search(line)):
                    ready.set_result(match.group(1).decode())
                for needle, seen in self._watches:
                    if needle in line and not seen.done():
                        seen.set_result(line)
        if not ready.done():
            ready.set_exception(EOFError(f"node {self.name} exited before serving"))

    def watch(self, needle: str) -> asyncio.Future[bytes]:
        """A future set to the next output line that contains ``needle``."""
        seen: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._watches.append((needle.encode(), seen))
        return seen

    async def signal(self, signum: int) -> None:
        if self.process is not None and self.process.returncode is None:
            with suppress(ProcessLookupError):
                self.process.send_signal(signum)
        if signum == signal.SIGSTOP:
            self.paused = True
        elif signum == signal.SIGCONT:
            self.paused = False

    async def wait(self, timeout: float = 60.0) -> int | None:
        """Wait for the process to end; its exit status."""
        if self.process is None:
            return None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._pump is not None:
            await self._pump
        return code

    async def kill(self) -> None:
        await self.signal(signal.SIGKILL)
        await self.wait()


@dataclass(frozen=True)
class Cluster:
    """The ``[cluster]`` table every node gets (its own ``node_id`` added per node)."""

    nats: str
    prefix: str
    lease_ttl_s: float = 2.0
    partitions: int = 16

    def table(self, node_id: str) -> str:
        return (
            f'\n[cluster]\nnats = "{self.nats}"\nprefix = "{self.prefix}"\n'
            f"lease_ttl_s = {self.lease_ttl_s}\npartitions = {self.partitions}\n"
            f'node_id = "{node_id}"\n'
        )

    async def holders(self) -> dict[int, str]:
        """Each partition's lease holder (node id), read from the leases KV bucket."""
        connection = await nats.connect(self.nats)
        try:
            kv = await connection.jetstream().key_value(f"{self.prefix}_leases")
            found: dict[int, str] = {}
            for partition in range(self.partitions):
                try:
                    entry = await kv.get(f"p.{partition}")
                except KeyNotFoundError:  # absent, deleted or expired: not held
                    continue
                if entry.value:
                    found[partition] = entry.value.decode()
            return found
        finally:
            await connection.close()

    async def delete(self) -> None:
        """Delete the KV buckets and streams of this cluster's prefix."""
        connection = await nats.connect(self.nats)
        try:
            js = connection.jetstream()
            for info in await js.streams_info():
                name = info.config.name or ""
                if self.prefix in name:
                    await js.delete_stream(name)
        finally:
            await connection.close()


class Nodes:
    """N nodes serving the example flow on one journal (and, in cluster mode, one NATS)."""

    def __init__(
        self,
        folder: Path,
        store: str,
        *,
        cluster: Cluster | None = None,
        durability: str = "sync",
        extra: Sequence[str] = (),
    ) -> None:
        self.folder = folder
        self.store = store
        self.cluster = cluster
        self.durability = durability
        self.extra = list(extra)
        self.nodes: list[Node] = []
        shutil.copy(EXAMPLES / "customer_service_tools.py", folder)
        self.flow_text = (EXAMPLES / "customer_service.toml").read_text()

    def flow(self, name: str) -> Path:
        """The node's copy of the flow: in cluster mode with its ``[cluster]`` table."""
        path = self.folder / f"customer_service-{name}.toml"
        if not path.exists():
            table = self.cluster.table(name) if self.cluster is not None else ""
            path.write_text(self.flow_text + table)
        return path

    def argv(self, name: str, store: str | None = None) -> list[str]:
        return [
            sys.executable,
            "-m",
            "relaybaton",
            "--log-level",
            "info",  # the partitions a node gains are logged at info
            "serve",
            str(self.flow(name)),
            "--port",
            "0",
            "--store",
            store or self.store,
            "--durability",
            self.durability,
            "--rate",
            "100000",
            "--max-concurrent",
            "100000",
            "--no-console",
            *self.extra,
        ]

    async def add(
        self,
        *,
        store: str | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
        reachable: bool = True,
    ) -> Node:
        """Start one more node; ``store`` overrides the journal's address for it, ``wrap``
        its command line (to run it in a network namespace), and a node not ``reachable``
        is never picked by clients (they reach it only through another node)."""
        name = f"node-{len(self.nodes) + 1}"
        argv = self.argv(name, store)
        node = Node(name, wrap(argv) if wrap else argv, self.folder / f"{name}.log")
        node.reachable = reachable
        self.nodes.append(node)
        await node.start()
        return node

    async def restart(self, node: Node) -> None:
        """Start a stopped node again, same name and arguments (its port may change)."""
        await node.start()

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive and n.reachable]

    def named(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    async def wait_placed(
        self, holders: Sequence[str], within: float, *, each: bool = False
    ) -> float:
        """Wait until every partition is held, by ``holders`` only (and, with ``each``, by
        every one of them: a node that joined has its share); the seconds it took."""
        assert self.cluster is not None
        started = time.monotonic()
        wanted = set(holders)
        while True:
            held = await self.cluster.holders()
            owners = set(held.values())
            if len(held) == self.cluster.partitions and (
                owners == wanted if each else owners <= wanted
            ):
                return time.monotonic() - started
            if time.monotonic() - started > within:
                raise TimeoutError(
                    f"partitions not placed on {sorted(wanted)} in {within} s: {held}"
                )
            # Polled: an expired lease leaves no KV entry to watch for (it simply ages out).
            await asyncio.sleep(0.05)

    async def aclose(self) -> None:
        for node in self.nodes:
            if node.paused:
                await node.signal(signal.SIGCONT)
            await node.signal(signal.SIGTERM)
        for node in self.nodes:
            try:
                await node.wait(timeout=20)
            except TimeoutError:
                await node.kill()
