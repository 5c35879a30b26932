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
import signal
import time
from pathlib import Path

import psycopg
import pytest

from relaybaton.cluster import partition_of
from tests._nats import NATS_URL, require_nats, throwaway_prefix
from tests._postgres import PG_DSN, require_postgres
from tests.cluster._harness import Cluster, Node, Nodes, throwaway_database
from tests.cluster._history import HistoryRecorder, longest_wait
from tests.cluster._load import MESSAGES, LoadStats, Workload, run_load, send_one
from tests.cluster._netns import Namespace, netns_problem
from tests.cluster._servers import OwnNats, OwnPostgres
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


async def test_a_paused_node_past_its_lease_steps_down_and_reaches_no_client(
    tmp_path: Path,
) -> None:
    # Node B is SIGSTOPped in the middle of refund turns it owns (handoffs, tool calls);
    # A takes B's partitions once the lease runs out; B is SIGCONTed. B must step down, its
    # late journal writes must be refused, and no reply of B after the takeover may reach
    # a client: the checker holds every answer against the journal and its lease generations.
    require_postgres()
    require_nats()
    cluster = Cluster(nats=NATS_URL, prefix=throwaway_prefix(), lease_ttl_s=2.0)
    async with throwaway_database(PG_DSN) as dsn:
        nodes = Nodes(tmp_path, dsn, cluster=cluster)
        try:
            a, b = await nodes.add(), await nodes.add()
            await nodes.wait_placed([a.name, b.name], within=20)
            held = await cluster.holders()
            owned_by_b = [
                cid
                for cid in (f"paused{n}" for n in range(400))
                if held[partition_of(cid, cluster.partitions)] == b.name
            ][:8]
            recorder = HistoryRecorder()
            refunds = asyncio.gather(
                *(
                    send_one(
                        b.url, recorder, cid, f"{cid}-m0", MESSAGES[3], others=lambda: _urls(nodes)
                    )
                    for cid in owned_by_b
                )
            )
            lost = b.watch("partition_lost")
            await _handed_off_unfinished(dsn, owned_by_b)  # mid-turn, past the handoff
            await b.signal(signal.SIGSTOP)
            await nodes.wait_placed([a.name], within=cluster.lease_ttl_s + 10)
            await b.signal(signal.SIGCONT)
            line = await asyncio.wait_for(lost, timeout=10)
            outcomes = await refunds
        finally:
            await nodes.aclose()
            await cluster.delete()
        verdict = await judge(
            dsn, recorder.history, seed=SEED, scenario="cluster-pause", folder=tmp_path
        )
    assert b"partition_lost" in line
    assert not verdict.violations, verdict.explain()
    assert all(op.type == "ok" for op in outcomes), [op.error for op in outcomes]
    # The pause landed mid-turn: turns B began were finished under a later lease.
    crossed = [
        cid
        for cid, entries in verdict.journals.items()
        if len({e.generation for e in entries}) > 1 and entries[0].writer == b.name
    ]
    assert crossed, "no turn crossed the takeover"


async def _handed_off_unfinished(dsn: str, conversation_ids: list[str]) -> None:
    """Return once one of the conversations is past a handoff with its turn unfinished.

    Polled (every 10 ms): the journal's heads are the only place another process can see
    a turn's progress.
    """
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        async with asyncio.timeout(20):
            while True:
                cur = await conn.execute(
                    "SELECT count(*) FROM relaybaton.heads"
                    " WHERE conversation_id = ANY(%s) AND epoch >= 1 AND unfinished",
                    (conversation_ids,),
                )
                row = await cur.fetchone()
                if row is not None and row[0] > 0:
                    return
                await asyncio.sleep(0.01)


@pytest.mark.parametrize("server", ["nats", "postgres"])
async def test_nodes_carry_on_when_a_server_restarts_under_load(
    tmp_path: Path, server: str
) -> None:
    # Servers of the test's own (the shared ones serve everyone else): NATS restarted with
    # its JetStream folder kept; PostgreSQL stopped as a crash would (immediate) and started
    # again. The nodes must reconnect and carry on; the checker judges the history.
    require_postgres()
    rng = random.Random(SEED)
    own_nats = OwnNats(tmp_path / "nats")
    own_pg = OwnPostgres() if server == "postgres" else None
    await own_nats.start()
    if own_pg is not None:
        await own_pg.start()
    admin = own_pg.dsn if own_pg is not None else PG_DSN
    cluster = Cluster(nats=own_nats.url, prefix=throwaway_prefix(), lease_ttl_s=2.0)
    workload = Workload(
        seed=SEED, conversations=300 if FULL else 40, messages=3, concurrency=16, timeout_s=15
    )
    restarts = 3 if FULL else 1
    try:
        async with throwaway_database(admin) as dsn:
            nodes = Nodes(tmp_path, dsn, cluster=cluster)
            try:
                for _ in range(2):
                    await nodes.add()
                await nodes.wait_placed([n.name for n in nodes.nodes], within=20)
                recorder, progress, stats = HistoryRecorder(), Progress(), LoadStats()
                load = asyncio.create_task(
                    run_load(
                        workload, lambda: _urls(nodes), recorder, stats=stats, on_progress=progress
                    )
                )
                try:
                    for k in range(restarts):
                        await progress.reached((k + 1) * workload.conversations // (restarts + 2))
                        await asyncio.sleep(rng.uniform(0.0, 0.3))
                        await (own_pg.restart() if own_pg is not None else own_nats.restart())
                    await load
                finally:
                    load.cancel()
                alive = [n.name for n in nodes.nodes if n.alive]
            finally:
                await nodes.aclose()
            verdict = await judge(
                dsn, recorder.history, seed=SEED, scenario=f"{server}-restart", folder=tmp_path
            )
    finally:
        await own_nats.stop()
        if own_pg is not None:
            await own_pg.aclose()
    assert not verdict.violations, verdict.explain()
    assert alive == [n.name for n in nodes.nodes], "a node died of the restart"
    # They carried on: most messages were answered, the ones after the restart included.
    assert stats.outcomes.get("send:ok", 0) >= workload.conversations * workload.messages * 3 // 4


async def test_a_node_cut_off_the_network_steps_down_and_the_others_carry_on(
    tmp_path: Path,
) -> None:
    # Node C runs in a network namespace, joined to this machine by a veth pair; clients
    # reach it only through A and B (forwarding over NATS). Mid-load the link goes down
    # (packets dropped): C must step down by its own clock, A and B take its partitions, and
    # when the link comes back C's late writes are refused and it rejoins. Servers of the
    # test's own listen on the pair's address so C can reach them.
    problem = netns_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true runs the network cut: {problem}", pytrace=False)
        pytest.skip(problem)
    require_postgres()
    rng = random.Random(SEED)
    namespace = Namespace()
    own_nats = OwnNats(tmp_path / "nats", host=namespace.host_ip)
    own_pg = OwnPostgres(host=namespace.host_ip)
    cluster = Cluster(nats=own_nats.url, prefix=throwaway_prefix(), lease_ttl_s=2.0)
    workload = Workload(
        seed=SEED, conversations=300 if FULL else 60, messages=3, concurrency=16, timeout_s=15
    )
    try:
        await own_nats.start()
        await own_pg.start()
        async with throwaway_database(own_pg.dsn) as dsn:
            far_dsn = dsn.replace("127.0.0.1", namespace.host_ip)
            nodes = Nodes(tmp_path, dsn, cluster=cluster)
            try:
                a, b = await nodes.add(), await nodes.add()
                c_gained = asyncio.get_running_loop().create_future()
                c = await _add_watched(nodes, far_dsn, namespace, c_gained)
                await asyncio.wait_for(c_gained, timeout=20)  # C holds a share
                recorder, progress, stats = HistoryRecorder(), Progress(), LoadStats()
                load = asyncio.create_task(
                    run_load(
                        workload, lambda: _urls(nodes), recorder, stats=stats, on_progress=progress
                    )
                )
                try:
                    await progress.reached(workload.conversations // 3)
                    await asyncio.sleep(rng.uniform(0.0, 0.3))
                    lost = c.watch("partition_lost")
                    taken = [a.watch("partition_gained"), b.watch("partition_gained")]
                    namespace.cut()
                    await asyncio.wait_for(
                        asyncio.wait(taken, return_when=asyncio.FIRST_COMPLETED),
                        timeout=cluster.lease_ttl_s + 10,
                    )
                    stepped_down = await asyncio.wait_for(lost, timeout=cluster.lease_ttl_s + 10)
                    namespace.heal()
                    await load
                finally:
                    load.cancel()
            finally:
                await nodes.aclose()
            verdict = await judge(
                dsn, recorder.history, seed=SEED, scenario="network-cut", folder=tmp_path
            )
    finally:
        await own_nats.stop()
        await own_pg.aclose()
        namespace.close()
    assert b"partition_lost" in stepped_down
    assert not verdict.violations, verdict.explain()
    assert stats.outcomes.get("send:ok", 0) >= workload.conversations * workload.messages * 3 // 4


async def _add_watched(
    nodes: Nodes, store: str, namespace: Namespace, gained: asyncio.Future[bytes]
) -> Node:
    """Start a node inside ``namespace``; ``gained`` is set once it holds a partition."""
    node = Node("node-3", [], nodes.folder / "node-3.log")
    node.argv = namespace.argv(nodes.argv(node.name, store))
    node.reachable = False
    watch = node.watch("partition_gained")
    watch.add_done_callback(lambda f: gained.set_result(f.result()) if not gained.done() else None)
    nodes.nodes.append(node)
    await node.start()
    return node


async def test_a_rolling_restart_hands_every_partition_over_without_a_long_pause(
    tmp_path: Path,
) -> None:
    # Each of three nodes in turn is SIGTERMed under load and started again. A node handing
    # a partition over lets its turns in flight finish under its lease, which is still its
    # own: none of its writes may be refused (they were, and its drain then waited its whole
    # deadline, 30 s, while the partition answered nobody), and no message waits long.
    require_postgres()
    require_nats()
    cluster = Cluster(nats=NATS_URL, prefix=throwaway_prefix(), lease_ttl_s=2.0)
    workload = Workload(
        seed=SEED, conversations=10**9, messages=3, concurrency=24, timeout_s=15, prefix="rr"
    )
    async with throwaway_database(PG_DSN) as dsn:
        nodes = Nodes(tmp_path, dsn, cluster=cluster)
        try:
            for _ in range(3):
                await nodes.add()
            await nodes.wait_placed([n.name for n in nodes.nodes], within=20, each=True)
            recorder, stop = HistoryRecorder(), asyncio.Event()
            load = asyncio.create_task(
                run_load(workload, lambda: _urls(nodes), recorder, stop=stop)
            )
            began = time.monotonic()
            try:
                for node in list(nodes.nodes):
                    await node.signal(signal.SIGTERM)
                    assert await node.wait() == 0, f"{node.name} did not drain in time"
                    await nodes.restart(node)
                    await nodes.wait_placed([n.name for n in nodes.nodes], within=20, each=True)
            finally:
                stop.set()
                await load
            ended = time.monotonic()
        finally:
            await nodes.aclose()
            await cluster.delete()
        verdict = await judge(
            dsn, recorder.history, seed=SEED, scenario="rolling-restart", folder=tmp_path
        )
    assert not verdict.violations, verdict.explain()
    refused = [n.name for n in nodes.nodes if "FencedWriteError" in n.log_path.read_text()]
    assert refused == [], f"a node's own writes were refused while it handed over: {refused}"
    assert longest_wait(recorder.history, began, ended) < cluster.lease_ttl_s + 5.0
