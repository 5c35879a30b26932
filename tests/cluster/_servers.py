"""A NATS server and a PostgreSQL server of a test's own, to restart under load.

The machine's shared servers (NATS on 4222, PostgreSQL on 5432) serve every other test
and helper; a test that restarts a server starts its own instead, on a free port with its
data in the test's folder, and stops it at the end. NATS keeps JetStream in its ``-sd``
folder, so a restart keeps streams and KV buckets; PostgreSQL is stopped in ``immediate``
mode (what a crash leaves: recovery from the WAL at the next start).
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import BinaryIO

__all__ = ["OwnNats", "OwnPostgres", "free_port", "postgres_bin"]

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server programs on this machine, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


async def _run(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({process.returncode}): {text[-2000:]}")
    return text


class OwnNats:
    """``nats-server -js`` on a free port, JetStream data in ``folder``."""

    def __init__(self, folder: Path, host: str = "127.0.0.1") -> None:
        self.folder = folder
        self.host = host
        self.port = free_port(host)
        self.url = f"nats://{host}:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        """Start it and return once it says it is ready (read from its output: the test
        process may not connect to a non-loopback address to probe it)."""
        store = self.folder / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            NATS_SERVER,
            "-a", self.host,
            "-p", str(self.port),
            "-js",
            "-sd", str(store),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert self.process.stdout is not None
        log = (self.folder / "nats.log").open("ab")
        async with asyncio.timeout(timeout):
            async for line in self.process.stdout:
                log.write(line)
                if b"Server is ready" in line:
                    break
            else:
                raise RuntimeError(f"nats-server exited before it was ready; see {log.name}")
        self._pump = asyncio.create_task(self._copy(self.process.stdout, log))

    @staticmethod
    async def _copy(stream: asyncio.StreamReader, log: BinaryIO) -> None:
        with log:
            async for line in stream:
                log.write(line)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
        if self._pump is not None:
            await self._pump
            self._pump = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def aclose(self) -> None:
        await self.stop()


class OwnPostgres:
    """A throwaway PostgreSQL cluster (``initdb`` as the ``postgres`` user) on a free port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise RuntimeError("no PostgreSQL server programs under /usr/lib/postgresql")
        self.bin = binaries
        # Its own folder straight under the temporary directory: the server runs as
        # `postgres`, who cannot enter a test's folder (private to the user running tests).
        self.folder = Path(tempfile.mkdtemp(prefix="rb-own-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self.host = host
        self.port = free_port("127.0.0.1")
        self.data = self.folder / "pgdata"
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, program: str, *args: str) -> list[str]:
        argv = [str(self.bin / program), *args]
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    async def start(self) -> None:
        if not self.data.exists():
            await self._init()
        listen = "127.0.0.1" if self.host == "127.0.0.1" else f"127.0.0.1,{self.host}"
        options = f"-p {self.port} -k {self.folder} -c listen_addresses={listen} -c fsync=off"
        await _run(
            *self._as_postgres(
                "pg_ctl", "-D", str(self.data), "-o", options,
                "-l", str(self.folder / "postgres.log"), "-w", "start",
            )
        )  # fmt: skip

    async def _init(self) -> None:
        await _run(
            *self._as_postgres(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N"
            )
        )
        if self.host != "127.0.0.1":  # a namespace's node connects from the far end of a veth
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.host}/30 trust\n")

    async def stop(self, mode: str = "immediate") -> None:
        if (self.data / "postmaster.pid").exists():
            await _run(*self._as_postgres("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"))

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def aclose(self) -> None:
        await self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
