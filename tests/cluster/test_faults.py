"""Faults against real ``relaybaton serve`` processes, judged by the history checker.

Every test runs a seeded load of customer conversations (handoffs, tools, approvals that a
person decides during the run) while it hurts the nodes, then reads every journal back from
PostgreSQL and checks the history (``_checker.py``): nothing acknowledged lost, nothing
processed twice, order kept, epochs growing, no reply the journal does not hold.

CI runs the short form (a few dozen conversations, one fault or two, under ~60 s each);
``RELAYBATON_FAULTS_FULL=1`` runs the long one (500 conversations, many faults).
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from tests._nats import NATS_URL, require_nats, throwaway_prefix
from tests._postgres import PG_DSN, require_postgres
from tests.cluster._harness import Cluster, Node, Nodes, throwaway_database
from tests.cluster._history import HistoryRecorder
from tests.cluster._load import LoadStats, Workload, run_load, send_one
from tests.cluster._verdict import judge

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FULL = os.environ.get("RELAYBATON_FAULTS_FULL") == "1"
SEED = int(os.environ.get("RELAYBATON_FAULTS_SEED", "1207"))


class Progress:
    """Lets a fault wait for the load to reach a point (an event, not a sleep)."""

    def __init__(self) -> None:
        self.done = 0
        self._marks: list[tuple[int, asyncio.Event]] = []

    def __call__(self, done: int) -> None:
        self.done = done
        for mark, event in self._marks:
            if done >= mark:
                event.set()

    async def reached(self, mark: int) -> None:
        event = asyncio.Event()
        if self.done >= mark:
            return
        self._marks.append((mark, event))
        await event.wait()


def _urls(nodes: Nodes) -> list[str]:
    return [n.url for n in nodes.live()]


async def test_a_single_process_killed_mid_load_and_restarted_loses_nothing(
    tmp_path: Path,
) -> None:
    # The baseline every cluster test builds on: one `serve` on PostgreSQL, SIGKILLed while
    # turns, handoffs and approvals are in flight, started again on the same journal.
    require_postgres()
    rng = random.Random(SEED)
    workload = Workload(
        seed=SEED, conversations=300 if FULL else 40, messages=3, concurrency=16, timeout_s=10
    )
    kills = 5 if FULL else 1
    async with throwaway_database(PG_DSN) as dsn:
        nodes = Nodes(
            tmp_path, dsn, durability=os.environ.get("RELAYBATON_FAULTS_DURABILITY", "sync")
        )
        node = await nodes.add()
        recorder, progress = HistoryRecorder(), Progress()
        stats = LoadStats()
        load = asyncio.create_task(
            run_load(workload, lambda: _urls(nodes), recorder, stats=stats, on_progress=progress)
        )
        try:
            for k in range(kills):
                await progress.reached((k + 1) * workload.conversations // (kills + 2))
                await asyncio.sleep(rng.uniform(0.0, 0.3))  # a random moment mid-turn
                await _crash_and_restart(nodes, node)
            await load
        finally:
            load.cancel()
            await nodes.aclose()
        verdict = await judge(
            dsn, recorder.history, seed=SEED, scenario="single-kill", folder=tmp_path
        )
    assert not verdict.violations, verdict.explain()
    assert stats.outcomes.get("send:ok", 0) >= workload.conversations * workload.messages // 2
    assert len(verdict.journals) >= workload.conversations // 2


async def _crash_and_restart(nodes: Nodes, node: Node) -> None:
    await node.kill()
    await nodes.restart(node)


async def test_a_conversation_finished_before_a_restart_keeps_its_messages(
    tmp_path: Path,
) -> None:
    # Found by the checker (histories/single-kill-seed1207-acked-then-lost.json): the first
    # message's records were overwritten when the conversation started over at seq 1.
    require_postgres()
    async with throwaway_database(PG_DSN) as dsn:
        nodes = Nodes(tmp_path, dsn)
        node = await nodes.add()
        recorder = HistoryRecorder()
        try:
            first = await send_one(node.url, recorder, "pg1", "pg1-m0", "Hello")
            assert first.type == "ok"
            await _crash_and_restart(nodes, node)
            second = await send_one(node.url, recorder, "pg1", "pg1-m1", "Hello again")
            assert second.type == "ok"
        finally:
            await nodes.aclose()
        verdict = await judge(
            dsn, recorder.history, seed=SEED, scenario="restart-continue", folder=tmp_path
        )
    assert not verdict.violations, verdict.explain()


async def test_cluster_nodes_killed_at_random_under_load_lose_nothing(tmp_path: Path) -> None:
    # Three nodes; at random moments a random node is SIGKILLed (turns, handoffs, tool
    # calls and approvals in flight), the survivors take its partitions within the lease
    # TTL, and it rejoins. Every journal must then agree with what every client was told.
    require_postgres()
    require_nats()
    rng = random.Random(SEED)
    cluster = Cluster(nats=NATS_URL, prefix=throwaway_prefix(), lease_ttl_s=2.0)
    workload = Workload(
        seed=SEED, conversations=500 if FULL else 60, messages=3, concurrency=24, timeout_s=15
    )
    kills = 10 if FULL else 2
    takeovers: list[float] = []
    async with throwaway_database(PG_DSN) as dsn:
        nodes = Nodes(tmp_path, dsn, cluster=cluster)
        try:
            for _ in range(3):
                await nodes.add()
            await nodes.wait_placed([n.name for n in nodes.nodes], within=20)
            recorder, progress, stats = HistoryRecorder(), Progress(), LoadStats()
            load = asyncio.create_task(
                run_load(
                    workload, lambda: _urls(nodes), recorder, stats=stats, on_progress=progress
                )
            )
            try:
                for k in range(kills):
                    await progress.reached((k + 1) * workload.conversations // (kills + 2))
                    await asyncio.sleep(rng.uniform(0.0, 0.3))  # a random moment mid-turn
                    victim = rng.choice(nodes.live())
                    await victim.kill()
                    survivors = [n.name for n in nodes.live()]
                    takeovers.append(
                        await nodes.wait_placed(survivors, within=cluster.lease_ttl_s + 10)
                    )
                    await nodes.restart(victim)
                await load
            finally:
                load.cancel()
        finally:
            await nodes.aclose()
            await cluster.delete()
        verdict = await judge(
            dsn, recorder.history, seed=SEED, scenario="cluster-kill", folder=tmp_path
        )
    assert not verdict.violations, verdict.explain()
    # The kills landed under load, and the survivors took over within the TTL and a second
    # (measured from the kill to every partition held again, a bound on what clients saw).
    assert stats.outcomes.get("send:ok", 0) >= workload.conversations * workload.messages // 2
    assert max(takeovers) <= cluster.lease_ttl_s + 1.0 + 2.0, takeovers
