"""Kill a real runtime process at every named failpoint, restart it, and check nothing broke.

Each case runs ``python -m relaybaton run`` on a SQLite store with ``RELAYBATON_FAILPOINT``
set, so the process exits at once with status 137 (as SIGKILL would) at that point; then
``relaybaton resume`` (and, for a paused refund, ``approvals approve``) until the
conversation is done. Afterwards, from the store and the side-effect file:

- every accepted user message is in the transcript exactly once, and has its one result;
- every refund happened once per idempotency key (re-runs reused the key);
- epochs only grew;
- every tool call in the transcript has exactly one result (a history providers accept).

Hypothesis picks the failpoint, which hit of it kills, and the durability mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaybaton.adapters import AssistantMessage, ChatMessage, ToolResultMessage, UserMessage
from relaybaton.runtime import Journal, MonotonicClock
from relaybaton.runtime._failpoints import FAILPOINTS
from relaybaton.runtime._journal_events import Accepted, Replied, TurnFailed
from relaybaton.stores import open_store

ROOT = Path(__file__).resolve().parents[2]
FLOW = Path(__file__).parent / "crash_flow" / "flow.toml"
MESSAGES = ["I want a refund of $40 for order AB-1234", "And a refund of $150 for order CD-5678"]


def _relaybaton(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaybaton", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _env(effects: Path, failpoint: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RELAYBATON_FAILPOINT"}
    env["PYTHONPATH"] = str(ROOT)
    env["RELAYBATON_TEST_EFFECTS"] = str(effects)
    if failpoint:
        env["RELAYBATON_FAILPOINT"] = failpoint
    return env


async def _state(store_path: Path) -> tuple[list[Any], Any]:
    async with open_store(str(store_path)) as store:
        journal: Journal[ChatMessage] = Journal(store, ChatMessage, clock=MonotonicClock())
        records = journal.decode(await store.read("c1"))
        conversation = await journal.load("c1", entry="triage")
    return records, conversation


def _run_case(tmp: Path, failpoint: str, hit: int, durability: str) -> int:
    """Run the scenario; return how many processes the failpoint killed."""
    store, effects = tmp / "journal.db", tmp / "effects.jsonl"
    for stale in (store, effects):
        stale.unlink(missing_ok=True)
    crash = f"{failpoint}:{hit}"
    first = _relaybaton(
        ["run", str(FLOW), "--store", str(store), "--conversation", "c1",
         "--durability", durability, *(arg for m in MESSAGES for arg in ("-m", m))],
        _env(effects, crash),
    )  # fmt: skip
    assert first.returncode in (0, 137), first.stderr
    kills = int(first.returncode == 137)
    calm = _env(effects, None)
    for _ in range(6):  # resume, decide what waits, resume: until the conversation is done
        records, conversation = anyio.run(_state, store)
        if conversation is not None and not conversation.unfinished:
            break
        listed = _relaybaton(["approvals", "list", "--store", str(store), "--json"], calm)
        assert listed.returncode == 0, listed.stderr
        for request in json.loads(listed.stdout):
            decided = _relaybaton(
                ["approvals", "approve", request["approval_id"], "--store", str(store)], calm
            )
            assert decided.returncode == 0, decided.stderr
        # The first resume may die too (the same failpoint, armed again): a crash in recovery.
        resumed = _relaybaton(
            ["resume", str(FLOW), "--store", str(store), "--durability", durability],
            _env(effects, crash) if _ == 0 else calm,
        )
        assert resumed.returncode in (0, 137), resumed.stderr
        kills += int(resumed.returncode == 137)
    records, conversation = anyio.run(_state, store)
    _check(records, conversation, effects)
    return kills


def _check(records: list[Any], conversation: Any, effects: Path) -> None:
    assert conversation is not None
    assert not conversation.unfinished, "the conversation did not continue to its end"
    accepted = [r.event.message_id for r in records if isinstance(r.event, Accepted)]
    assert accepted, "no message was accepted"
    assert len(accepted) == len(set(accepted))
    in_transcript = Counter(
        m.message_id for m in conversation.transcript if isinstance(m, UserMessage)
    )
    assert all(in_transcript[mid] == 1 for mid in accepted), in_transcript
    ended = [r for r in records if isinstance(r.event, Replied | TurnFailed)]
    assert len(ended) == len(accepted), "a turn ended twice, or never"
    assert not [r for r in ended if isinstance(r.event, TurnFailed)], "a turn failed"
    assert all(conversation.seen[mid].result is not None for mid in accepted)
    epochs = [r.epoch for r in records]
    assert epochs == sorted(epochs), "an epoch went backwards"
    calls = [c.id for m in conversation.transcript if isinstance(m, AssistantMessage)
             for c in m.tool_calls]  # fmt: skip
    results = Counter(
        m.call_id for m in conversation.transcript if isinstance(m, ToolResultMessage)
    )
    assert all(results[c] == 1 for c in calls), (calls, results)
    lines = [json.loads(x) for x in effects.read_text().splitlines()] if effects.exists() else []
    applied = Counter(line["key"] for line in lines if line["applied"])
    assert all(n == 1 for n in applied.values()), applied
    wanted = sorted(
        float(r.event.item.text.split("$")[1].split()[0])
        for r in records
        if isinstance(r.event, Accepted)
    )
    assert sorted(line["amount"] for line in lines if line["applied"]) == wanted


@pytest.mark.integration
@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_a_kill_at_each_failpoint_in_sync_mode_loses_and_repeats_nothing(
    tmp_path: Path, failpoint: str
) -> None:
    assert _run_case(tmp_path, failpoint, 1, "sync") >= 1, "the failpoint never fired"


@pytest.mark.integration
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    failpoint=st.sampled_from(FAILPOINTS),
    hit=st.integers(min_value=1, max_value=3),
    durability=st.sampled_from(["sync", "batched"]),
)
def test_a_kill_anywhere_in_any_mode_loses_and_repeats_nothing(
    tmp_path: Path, failpoint: str, hit: int, durability: str
) -> None:
    _run_case(tmp_path, failpoint, hit, durability)
