"""Two nodes, one PostgreSQL graph: concurrent writes equal the same writes one by one.

In cluster mode every node keeps long-term memory in the same PostgreSQL schema, and each
node's memory actor serializes only its own calls. Here two stores (two connections, as
two nodes have) each run their own queue of random operations on one namespace, both at
once. Every write is one transaction behind the namespace's advisory lock, so the writes
happen in some order; the store records the order the lock let them in, and applying the
same writes in that order to a fresh graph must give the same results and the same graph.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaybaton.memory import Compat, KnowledgeGraph
from relaybaton.memory._sqlite import SqliteGraphStore
from relaybaton.memory._store import GraphTransaction
from tests._postgres import PG_DSN, drop_schema, require_postgres, throwaway_schema
from tests.memory.test_graph_concurrency import FIXED_TIME, Op, apply, operations

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

T = TypeVar("T")

_current: ContextVar[int] = ContextVar("current_operation")


class RecordingStore:
    """A node's store that notes which write entered its transaction, in lock order."""

    def __init__(self, inner: Any, order: list[int]) -> None:
        self.inner = inner
        self.order = order

    async def run(
        self,
        namespace: str,
        operation: Callable[[GraphTransaction], T],
        *,
        readonly: bool = False,
    ) -> T:
        if readonly:
            return await self.inner.run(namespace, operation, readonly=True)  # type: ignore[no-any-return]
        index = _current.get()

        def noted(tx: GraphTransaction) -> T:
            # Runs inside the transaction, after the advisory lock: the next writer on the
            # namespace gets in only after this one commits.
            self.order.append(index)
            return operation(tx)

        return await self.inner.run(namespace, noted)  # type: ignore[no-any-return]


@pytest.fixture
def schema() -> Iterator[str]:
    require_postgres()
    name = throwaway_schema()
    yield name
    drop_schema(name)


WRITES = {
    "create_entities",
    "create_relations",
    "add_observations",
    "delete_entities",
    "delete_observations",
    "delete_relations",
}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    ops=st.lists(st.tuples(st.integers(0, 1), operations), min_size=2, max_size=24),
    compat=st.sampled_from(list(Compat)),
)
async def test_two_nodes_writing_concurrently_equal_the_same_writes_one_by_one(
    schema: str, ops: list[tuple[int, Op]], compat: Compat
) -> None:
    from relaybaton.memory._postgres import PostgresGraphStore

    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    order: list[int] = []
    results: dict[int, Any] = {}
    nodes = [PostgresGraphStore(PG_DSN, schema=schema) for _ in range(2)]
    try:
        graphs = [
            KnowledgeGraph(
                RecordingStore(store, order),  # type: ignore[arg-type]
                compat=compat,
                namespace=namespace,
                clock=lambda: FIXED_TIME,
            )
            for store in nodes
        ]

        async def node(which: int) -> None:
            # One node's memory actor: its own operations, one at a time, in order.
            for index, (owner, op) in enumerate(ops):
                if owner == which:
                    _current.set(index)
                    results[index] = await apply(graphs[which], op)

        async with anyio.create_task_group() as tg:
            tg.start_soon(node, 0)
            tg.start_soon(node, 1)
        final = await apply(graphs[0], ("read_graph", None))
    finally:
        for store in nodes:
            await store.aclose()

    writes = [i for i, (_, op) in enumerate(ops) if op[0] in WRITES]
    assert sorted(order) == writes  # each write ran exactly once, none lost
    sequential_store = SqliteGraphStore(":memory:")
    try:
        sequential = KnowledgeGraph(sequential_store, compat=compat, clock=lambda: FIXED_TIME)
        expected = [await apply(sequential, ops[i][1]) for i in order]
        assert [results[i] for i in order] == expected
        assert final == await apply(sequential, ("read_graph", None))
    finally:
        await sequential_store.aclose()
