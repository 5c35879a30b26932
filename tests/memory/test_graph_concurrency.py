"""No lost update: concurrent operations equal the same operations applied one by one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaybaton.errors import GraphError
from relaybaton.memory import (
    Compat,
    Entity,
    KnowledgeGraph,
    ObservationAddition,
    ObservationDeletion,
    Relation,
)
from relaybaton.memory._sqlite import SqliteGraphStore
from relaybaton.memory._types import to_wire
from tests._postgres import PG_DSN, drop_schema, require_postgres, throwaway_schema

pytestmark = pytest.mark.anyio

FIXED_TIME = datetime(2026, 1, 2, tzinfo=UTC)

names = st.sampled_from(["a", "b", "c", "d"])
contents = st.lists(st.sampled_from(["x", "y", "z"]), max_size=3).map(tuple)
relations = st.builds(Relation, from_=names, to=names, relation_type=st.sampled_from(["r", "s"]))
Op = tuple[str, Any]
operations: st.SearchStrategy[Op] = st.one_of(
    st.tuples(
        st.just("create_entities"),
        st.lists(
            st.builds(Entity, name=names, entity_type=st.just("t"), observations=contents),
            max_size=3,
        ),
    ),
    st.tuples(st.just("create_relations"), st.lists(relations, max_size=3)),
    st.tuples(
        st.just("add_observations"),
        st.lists(st.builds(ObservationAddition, entity_name=names, contents=contents), max_size=2),
    ),
    st.tuples(st.just("delete_entities"), st.lists(names, max_size=2)),
    st.tuples(
        st.just("delete_observations"),
        st.lists(
            st.builds(ObservationDeletion, entity_name=names, observations=contents), max_size=2
        ),
    ),
    st.tuples(st.just("delete_relations"), st.lists(relations, max_size=2)),
    st.tuples(st.just("read_graph"), st.none()),
    st.tuples(st.just("search_nodes"), st.sampled_from(["", "a", "x", "T"])),
    st.tuples(st.just("open_nodes"), st.lists(names, max_size=2)),
)


async def apply(graph: KnowledgeGraph, op: Op) -> Any:
    """Run one operation; return its wire-shaped result or its error text."""
    name, arg = op
    try:
        result = await (getattr(graph, name)() if arg is None else getattr(graph, name)(arg))
    except GraphError as exc:
        return f"error: {exc}"
    return to_wire(result)


@dataclass
class SerializedGraph:
    """A single consumer in front of a graph: a stand-in for the memory actor's mailbox."""

    graph: KnowledgeGraph
    order: list[Op] = field(default_factory=list)

    async def run(self, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        send, self._receive = anyio.create_memory_object_stream[tuple[Op, Any]](100)
        self._send = send
        task_status.started()
        async with self._receive:
            async for op, reply in self._receive:
                self.order.append(op)
                async with reply:
                    await reply.send(await apply(self.graph, op))

    async def call(self, op: Op) -> Any:
        reply_send, reply_receive = anyio.create_memory_object_stream[Any](1)
        await self._send.send((op, reply_send))
        async with reply_receive:
            return await reply_receive.receive()

    async def aclose(self) -> None:
        await self._send.aclose()


def graph_on(store: SqliteGraphStore, compat: Compat) -> KnowledgeGraph:
    return KnowledgeGraph(store, compat=compat, clock=lambda: FIXED_TIME)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operations, min_size=1, max_size=25), compat=st.sampled_from(list(Compat)))
async def test_concurrent_operations_equal_the_same_applied_one_by_one(
    ops: list[Op], compat: Compat
) -> None:
    concurrent_store, sequential_store = SqliteGraphStore(":memory:"), SqliteGraphStore(":memory:")
    try:
        serialized = SerializedGraph(graph_on(concurrent_store, compat))
        results: list[tuple[Op, Any]] = []

        async def submit(op: Op) -> None:
            results.append((op, await serialized.call(op)))

        async with anyio.create_task_group() as tg:
            await tg.start(serialized.run)
            async with anyio.create_task_group() as callers:
                for op in ops:
                    callers.start_soon(submit, op)
            await serialized.aclose()

        sequential = graph_on(sequential_store, compat)
        expected = [await apply(sequential, op) for op in serialized.order]
        by_op = {id(op): result for op, result in results}
        assert [by_op[id(op)] for op in serialized.order] == expected
        assert await apply(serialized.graph, ("read_graph", None)) == await apply(
            sequential, ("read_graph", None)
        )
    finally:
        await concurrent_store.aclose()
        await sequential_store.aclose()


async def test_twenty_concurrent_creates_keep_all_twenty_without_an_actor(
    strict: KnowledgeGraph,
) -> None:
    # The reference keeps 1 of 20 here; each operation is one transaction in the store.
    await strict.create_entities([Entity(name="hub", entity_type="t")])
    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(strict.create_entities, [Entity(name=f"e{i}", entity_type="t")])
            addition = ObservationAddition(entity_name="hub", contents=(str(i),))
            tg.start_soon(strict.add_observations, [addition])
    graph = await strict.read_graph()
    assert len(graph.entities) == 21
    assert sorted(graph.entities[0].observations) == sorted(str(i) for i in range(20))


WRITER = textwrap.dedent(
    """
    import sys, anyio
    from relaybaton.memory._graph import KnowledgeGraph
    from relaybaton.memory._sqlite import SqliteGraphStore
    from relaybaton.memory._types import Entity, ObservationAddition

    async def main(path, tag, n):
        store = SqliteGraphStore(path)
        graph = KnowledgeGraph(store)
        await graph.create_entities([Entity(name="hub", entity_type="t")])
        for i in range(n):
            await graph.create_entities([Entity(name=f"{tag}{i}", entity_type="t")])
            await graph.add_observations(
                [ObservationAddition(entity_name="hub", contents=(f"{tag}{i}",))]
            )
        await store.aclose()

    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
    """
)


def test_two_processes_writing_one_database_lose_nothing(tmp_path: Path) -> None:
    db, n = tmp_path / "shared.db", 150
    root = Path(__file__).resolve().parents[2]
    env = {"PYTHONPATH": str(root)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), tag, str(n)], env=env)
        for tag in ("p", "q")
    ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0]

    async def check() -> None:
        store = SqliteGraphStore(db)
        graph = (await KnowledgeGraph(store).read_graph()).entities
        await store.aclose()
        assert sorted(e.name for e in graph) == sorted(
            ["hub"] + [f"{t}{i}" for t in "pq" for i in range(n)]
        )
        assert len(graph[0].observations) == 2 * n

    anyio.run(check)


PG_WRITER = textwrap.dedent(
    """
    import sys, anyio
    from relaybaton.memory._graph import KnowledgeGraph
    from relaybaton.memory._postgres import PostgresGraphStore
    from relaybaton.memory._types import Entity, ObservationAddition

    async def main(dsn, schema, tag, n):
        store = PostgresGraphStore(dsn, schema=schema)
        graph = KnowledgeGraph(store)
        await graph.create_entities([Entity(name="hub", entity_type="t")])
        for i in range(n):
            await graph.create_entities([Entity(name=f"{tag}{i}", entity_type="t")])
            await graph.add_observations(
                [ObservationAddition(entity_name="hub", contents=(f"{tag}{i}",))]
            )
        await store.aclose()

    anyio.run(main, *sys.argv[1:4], int(sys.argv[4]))
    """
)


@pytest.mark.integration
def test_two_processes_writing_one_postgres_schema_lose_nothing() -> None:
    require_postgres()
    from relaybaton.memory._postgres import PostgresGraphStore

    schema, n = throwaway_schema(), 150
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    try:
        # Both start on an empty database: creating the schema is serialized too.
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", PG_WRITER, PG_DSN, schema, tag, str(n)], env=env
            )
            for tag in ("p", "q")
        ]
        assert [w.wait(timeout=120) for w in writers] == [0, 0]

        async def check() -> None:
            store = PostgresGraphStore(PG_DSN, schema=schema)
            graph = (await KnowledgeGraph(store).read_graph()).entities
            await store.aclose()
            assert sorted(e.name for e in graph) == sorted(
                ["hub"] + [f"{t}{i}" for t in "pq" for i in range(n)]
            )
            assert sorted(graph[0].observations) == sorted(
                f"{t}{i}" for t in "pq" for i in range(n)
            )

        anyio.run(check)
    finally:
        drop_schema(schema)
