"""`relaybaton conversations list|pause|take|...`: a person's actions from the command line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from relaybaton.cli import main
from relaybaton.runtime._store import Head, WriteBatch
from relaybaton.stores import SqliteStore
from tests.service._support import serving

pytestmark = pytest.mark.anyio


async def relaybaton(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relaybaton",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_person_pauses_takes_and_replies_from_the_command_line() -> None:
    async with serving() as served:
        await served.runtime.send("c", "hello")
        code, out, _ = await relaybaton("conversations", "pause", "c", "--url", served.url)
        assert code == 0
        assert json.loads(out)["paused_by"] == "person:loopback"
        code, out, _ = await relaybaton(
            "conversations", "list", "--url", served.url, "--json", "--status", "active"
        )
        assert [c["conversation_id"] for c in json.loads(out)["data"]] == ["c"]
        code, _, err = await relaybaton(
            "conversations", "take", "c", "--url", served.url, "--epoch", "3"
        )
        assert code == 2
        assert "409: cannot take the baton of conversation 'c': it is at epoch 0" in err
        code, out, _ = await relaybaton(
            "conversations", "take", "c", "--url", served.url, "--epoch", "0"
        )
        assert (code, json.loads(out)["owner"]) == (0, "person:loopback")


def test_the_listing_reads_a_journal_page_by_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "journal.db"
    store = SqliteStore(path)
    heads = {
        f"c{n}": Head(
            conversation_id=f"c{n}",
            seq=1,
            epoch=n % 2,
            owner="triage",
            status="paused" if n == 2 else "active",
            unfinished=False,
            updated_at=1_000_000.0 + n,
        )
        for n in range(3)
    }
    store.write_sync(WriteBatch(heads=heads))
    asyncio.run(store.aclose())
    assert main(["conversations", "list", "--store", str(path), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("c2  paused  owner=triage  epoch=0")
    assert "more: --cursor" in out
    assert (
        main(["conversations", "list", "--store", str(path), "--status", "paused", "--json"]) == 0
    )
    assert [r["conversation_id"] for r in json.loads(capsys.readouterr().out)["data"]] == ["c2"]
    assert main(["conversations", "list", "--store", str(path), "--cursor", "bad"]) == 2
    assert "next_cursor of the previous page" in capsys.readouterr().err


async def test_a_fork_chooses_another_model_and_instructions_from_the_command_line() -> None:
    from relaybaton.adapters import ModelAdapter, ModelRequest
    from relaybaton.testing import ScriptedModel

    def build(slot: str, model_id: str) -> ModelAdapter:
        def answer(request: ModelRequest) -> str:
            return f"{model_id} as {request.instructions}"

        return ScriptedModel(answer, name=model_id)

    async with serving(model_builder=build) as served:
        await served.runtime.send("c", "hello")
        code, out, err = await relaybaton(
            "conversations",
            "fork",
            "c",
            "--url",
            served.url,
            "--upto",
            "2",
            "--new-id",
            "f",
            "--model",
            "triage=scripted:other",
            "--instructions",
            "triage=Be the other one: terse.",
        )
        assert code == 0, err
        state = json.loads(out)
        assert (state["forked_from"], state["fork_models"]) == ("c", {"triage": "scripted:other"})
        reply = await served.runtime.send("f", "again")
        assert reply.text == "scripted:other as Be the other one: terse."
        code, _, err = await relaybaton(
            "conversations", "fork", "c", "--url", served.url, "--upto", "2", "--model", "triage"
        )
        assert code == 2
        assert "--model: expected AGENT=VALUE, got 'triage'" in err
        code, _, err = await relaybaton(
            "conversations", "fork", "c", "--url", served.url, "--upto", "2",
            "--model", "nobody=scripted:other",
        )  # fmt: skip
        assert code == 2
        assert "400: models.nobody: no agent named 'nobody'" in err
