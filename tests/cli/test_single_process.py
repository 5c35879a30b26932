"""One process per store outside cluster mode, with real processes on one SQLite file and
on one PostgreSQL database.

A running ``serve`` holds its store: a second writer is refused at start-up naming it,
readers work beside it, a decision made with the CLI reaches it (and the conversation goes
on), a later decision over HTTP is a 409 that leaves the first standing, and a holder
killed with SIGKILL leaves nothing behind that stops the next start.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relaybaton.cli import main
from tests._postgres import PG_DSN, require_postgres

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
FLOW = str(ROOT / "tests" / "integration" / "crash_flow" / "flow.toml")
TOKEN = "single-process-test-token-0123456789"
REFUND = {"text": "I want a refund of $150 for order CD-5678", "message_id": "m1"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store address: a SQLite file, or a throwaway PostgreSQL database (the CLI's
    stores use the schema ``relaybaton``, so each test gets a database of its own)."""
    if request.param == "sqlite":
        yield str(tmp_path / "journal.db")
        return
    require_postgres()
    import psycopg

    name = f"rb_single_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_DSN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RELAYBATON_API_TOKENS": TOKEN,  # the service's tokens; the CLI finds one here too
        "RELAYBATON_TEST_EFFECTS": str(tmp_path / "effects.jsonl"),
    }


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """A command in this process (a process apart from the service), on a worker thread:
    it runs its own event loop, as from a shell."""

    def run() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            status = main(list(args))
        return status, out.getvalue(), err.getvalue()

    with pytest.MonkeyPatch.context() as patch:
        for name in ("RELAYBATON_API_TOKENS", "RELAYBATON_TEST_EFFECTS"):
            patch.setenv(name, env[name])
        return await asyncio.to_thread(run)


async def _process(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """A command as a process of its own."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relaybaton", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class Service:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url


async def _start(env: dict[str, str], store: str) -> Service:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relaybaton", "serve", FLOW, "--port", "0", "--store", store,
        "--durability", "sync",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    if "serving flow" not in banner:
        assert process.stderr is not None
        problem = (await process.stderr.read()).decode()
        pytest.fail(f"serve did not start: {banner!r} {problem}")
    return Service(process, banner.rsplit(" ", 1)[-1].strip())


@pytest.fixture
async def service(env: dict[str, str], store: str) -> AsyncIterator[Service]:
    running = await _start(env, store)
    try:
        yield running
    finally:
        if running.process.returncode is None:
            running.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(running.process.wait(), 20)
            except TimeoutError:
                running.process.kill()
                await running.process.wait()


def _http() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"})


async def _paused_refund(url: str) -> None:
    """Send the refund over the rule to c1 and return once it waits for a person."""
    async with _http() as session, session.get(f"{url}/v1/conversations/c1/events") as events:
        async with session.post(
            f"{url}/v1/conversations/c1/messages?wait=false", json=REFUND
        ) as accepted:
            assert accepted.status == 202
        async for line in events.content:
            if b'"kind":"paused"' in line:
                return


async def test_a_second_writer_is_refused_naming_the_service_and_readers_work_beside_it(
    env: dict[str, str], store: str, service: Service
) -> None:
    pid = service.process.pid
    for command in (
        ["serve", FLOW, "--port", "0", "--store", store],
        ["run", FLOW, "--store", store, "-m", "hello"],
        ["resume", FLOW, "--store", store],
    ):
        start = _process if command[0] == "serve" else _cli
        status, out, err = await start(env, *command)
        assert status == 2, (command, out, err)
        assert "Traceback" not in err
        assert "is in use by `relaybaton serve (" in err
        assert f"(pid {pid} on {socket.gethostname()}, since " in err
        assert f"serving {service.url})" in err
        assert "stop that process, point --store at another store" in err
        assert "--cluster nats://HOST:4222" in err
    await _paused_refund(service.url)

    status, out, err = await _cli(env, "approvals", "list", "--store", store, "--json")
    assert status == 0, err
    [request] = json.loads(out)
    assert (request["conversation_id"], request["tool"]) == ("c1", "issue_refund")
    status, out, err = await _cli(env, "conversations", "show", "c1", "--store", store, "--json")
    assert status == 0, err
    assert json.loads(out)["status"] == "awaiting_approval"
    status, out, err = await _cli(env, "conversations", "list", "--store", store, "--json")
    assert status == 0, err
    assert [row["conversation_id"] for row in json.loads(out)["data"]] == ["c1"]
    # A person's action named by the store goes through the service that holds it.
    note = ["conversations", "note", "c1", "the receipt is attached", "--store", store]
    status, out, err = await _cli(env, *note)
    assert status == 0, err
    assert json.loads(out)["notes_pending"] == 1  # the service's view after the note


async def test_a_cli_decision_reaches_the_running_service_and_a_later_one_gets_409(
    env: dict[str, str], store: str, service: Service, tmp_path: Path
) -> None:
    await _paused_refund(service.url)
    status, out, err = await _cli(env, "approvals", "list", "--store", store, "--json")
    [request] = json.loads(out)
    approval_id = request["approval_id"]

    status, out, err = await _cli(
        env, "approvals", "approve", approval_id, "--store", store, "--note", "receipt checked"
    )

    assert status == 0, err
    assert f"approve: {approval_id}; sent to the service at {service.url}" in out
    async with _http() as session:
        # The same message again answers with its one result: the service went on by itself.
        async with session.post(f"{service.url}/v1/conversations/c1/messages", json=REFUND) as r:
            replies = (await r.json())["replies"]
        assert "refunded $150.00" in replies[0]["text"]
        async with session.post(
            f"{service.url}/v1/approvals/{approval_id}",
            json={"decision": "reject", "reason": "changed my mind"},
        ) as late:
            assert late.status == 409
            error: dict[str, Any] = (await late.json())["error"]
        assert "was decided already" in error["message"]
        assert error["message"].endswith(": approve")
    status, out, err = await _cli(env, "approvals", "list", "--store", store, "--all", "--json")
    [stored] = json.loads(out)
    assert stored["decision"] == "approve"  # the approval stands
    assert len((tmp_path / "effects.jsonl").read_text().splitlines()) == 1


async def test_a_killed_holder_leaves_the_store_free_for_the_next_start(
    env: dict[str, str], store: str
) -> None:
    first = await _start(env, store)
    await _paused_refund(first.url)
    first.process.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(first.process.wait(), 10) == -signal.SIGKILL

    second = await _start(env, store)  # fails the test if refused
    try:
        status, out, err = await _cli(env, "approvals", "list", "--store", store, "--json")
        [request] = json.loads(out)
        # The new holder took the conversation over: the CLI's decision goes to it.
        status, out, err = await _cli(
            env, "approvals", "approve", request["approval_id"], "--store", store
        )
        assert status == 0, err
        assert f"sent to the service at {second.url}" in out
    finally:
        second.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.process.wait(), 20) == 0
