"""`serve FLOW --ab FLOW2`: two flow versions behind one address, split per conversation."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import aiohttp
import pytest

from relaybaton.actors.routing import RolloutPolicy
from relaybaton.cli import main
from relaybaton.cli._serve_ab import serve_ab
from relaybaton.flow import load_flow
from relaybaton.service._ab import FlowSplit

pytestmark = pytest.mark.anyio

FLOW = """
[flow]
name = "{name}"

[models.m]
model = "simulated:general"
latency_ms = 0
error_rate = {error_rate}

[[agents]]
name = "helper"
model = "m"
instructions = "Knowledge: our shop opens at nine."
"""


def _flow(tmp_path: Path, name: str, error_rate: float = 0.0) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(FLOW.format(name=name, error_rate=error_rate))
    return path


async def _split(
    tmp_path: Path, policy: RolloutPolicy, b_error_rate: float = 0.0
) -> tuple[str, FlowSplit, asyncio.Event, asyncio.Future[int]]:
    flows = (load_flow(_flow(tmp_path, "a")), load_flow(_flow(tmp_path, "b", b_error_rate)))
    stop = asyncio.Event()
    ready: asyncio.Future[tuple[str, FlowSplit]] = asyncio.get_running_loop().create_future()
    server = asyncio.ensure_future(
        serve_ab(flows, port=0, policy=policy, out=io.StringIO(), stop=stop, on_ready=ready)
    )
    url, split = await asyncio.wait_for(ready, 10)
    return url, split, stop, server


async def _talk(session: aiohttp.ClientSession, url: str, conversation: str) -> int:
    async with session.post(
        f"{url}/v1/conversations/{conversation}/messages", json={"text": "when do you open?"}
    ) as response:
        return response.status


async def test_each_conversation_stays_on_its_variant_and_the_share_follows_the_stage(
    tmp_path: Path,
) -> None:
    policy = RolloutPolicy(stages=(0.5, 1.0), window_s=1e9, min_calls=10_000)
    url, split, stop, server = await _split(tmp_path, policy)
    try:
        async with aiohttp.ClientSession() as session:
            for index in range(40):
                assert await _talk(session, url, f"c{index}") == 200
            first = {f"c{i}": split.variant_of(f"c{i}") for i in range(40)}
            for index in range(40):
                assert await _talk(session, url, f"c{index}") == 200
            async with session.get(f"{url}/v1/ab") as response:
                report = await response.json()
        a, b = (split.services[name].runtime for name in ("A", "B"))
        for conversation, variant in first.items():
            assert split.variant_of(conversation) == variant
            held = (a if variant == "A" else b).conversation(conversation)
            other = (b if variant == "A" else a).conversation(conversation)
            assert held is not None
            assert other is None
            assert held.usage_total().calls == 2  # both turns on the same variant
        on_b = sum(v == "B" for v in first.values())
        assert 10 <= on_b <= 30
        assert report["state"] == "running"
        assert report["share_b"] == 0.5
        assert report["variants"]["B"]["conversations"] == on_b
        assert report["variants"]["A"]["turns"] + report["variants"]["B"]["turns"] == 80
    finally:
        stop.set()
        assert await asyncio.wait_for(server, 20) == 0


async def test_a_failing_version_is_rolled_back_and_new_conversations_go_to_a(
    tmp_path: Path,
) -> None:
    policy = RolloutPolicy(stages=(0.5, 1.0), window_s=1e9, min_calls=4, error_margin=0.05)
    url, split, stop, server = await _split(tmp_path, policy, b_error_rate=1.0)
    try:
        async with aiohttp.ClientSession() as session:
            for index in range(40):
                await _talk(session, url, f"c{index}")
            assert split.rollout.state.value == "rolled_back"
            assert split.decisions[-1]["action"] == "rollback"
            assert str(split.decisions[-1]["reason"]).startswith("error rate")
            assert all(split.variant_of(f"new{i}") == "A" for i in range(20))
    finally:
        stop.set()
        assert await asyncio.wait_for(server, 20) == 0


async def test_a_healthy_version_is_promoted_and_takes_new_conversations(tmp_path: Path) -> None:
    policy = RolloutPolicy(stages=(0.5, 1.0), window_s=0.0, min_calls=3)
    url, split, stop, server = await _split(tmp_path, policy)
    try:
        async with aiohttp.ClientSession() as session:
            for index in range(30):
                assert await _talk(session, url, f"c{index}") == 200
        assert split.rollout.state.value == "promoted"
        assert all(split.variant_of(f"new{i}") == "B" for i in range(20))
    finally:
        stop.set()
        assert await asyncio.wait_for(server, 20) == 0


def test_bad_ab_options_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _flow(tmp_path, "a"), _flow(tmp_path, "b")
    assert main(["serve", str(a), "--ab", str(b), "--ab-stages", "50,5"]) == 2
    assert "--ab-stages '50,5': write rising percents" in capsys.readouterr().err
    assert main(["serve", str(a), "--ab", str(b), "--store", str(tmp_path / "j.db")]) == 2
    assert "drop --store and --model" in capsys.readouterr().err


async def test_a_variant_table_is_served_as_b(tmp_path: Path) -> None:
    path = _flow(tmp_path, "a")
    path.write_text(
        path.read_text()
        + '\n[variants.terse]\ninstructions = { helper = "Knowledge: we open at ten." }\n'
        + 'models = { m = "simulated:general-v2" }\n'
    )
    flow = load_flow(path)
    from relaybaton.flow._variants import variant_of

    variant, models = variant_of(flow, "terse")
    stop = asyncio.Event()
    ready: asyncio.Future[tuple[str, FlowSplit]] = asyncio.get_running_loop().create_future()
    server = asyncio.ensure_future(
        serve_ab((flow, variant), port=0, overrides=({}, models), out=io.StringIO(), stop=stop,
                 on_ready=ready, policy=RolloutPolicy(stages=(0.5, 1.0), min_calls=10_000))
    )  # fmt: skip
    try:
        _url, split = await asyncio.wait_for(ready, 10)
        b = split.services["B"].runtime
        assert b.agents["helper"].instructions == "Knowledge: we open at ten."
        assert b.slots["m"].adapter.name == "simulated:general-v2"
        assert split.services["A"].runtime.slots["m"].adapter.name == "simulated:general"
    finally:
        stop.set()
        assert await asyncio.wait_for(server, 20) == 0
