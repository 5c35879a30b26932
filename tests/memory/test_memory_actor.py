"""The memory actor: one activation per namespace, its calls serialized, nothing lost."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaybaton.actors import ToolContext
from relaybaton.errors import ToolArgumentsError, ToolError
from relaybaton.memory import Compat, KnowledgeGraph, Memory, create_memory_tools
from relaybaton.memory._mcp_tools import TOOLS, ToolOutcome, call_memory_tool
from relaybaton.memory._sqlite import SqliteGraphStore, open_sqlite_graph_store
from relaybaton.runtime import open_system

pytestmark = pytest.mark.anyio

FIXED_TIME = datetime(2026, 1, 2, tzinfo=UTC)

names = st.sampled_from(["a", "b", "c", "d"])
contents = st.lists(st.sampled_from(["x", "y", "z"]), max_size=3)
relation = st.fixed_dictionaries(
    {"from": names, "to": names, "relationType": st.sampled_from(["r", "s"])}
)
entity = st.fixed_dictionaries(
    {"name": names, "entityType": st.just("t"), "observations": contents}
)
Call = tuple[str, dict[str, Any]]
calls: st.SearchStrategy[Call] = st.one_of(
    st.tuples(
        st.just("create_entities"),
        st.fixed_dictionaries({"entities": st.lists(entity, max_size=3)}),
    ),
    st.tuples(
        st.just("create_relations"),
        st.fixed_dictionaries({"relations": st.lists(relation, max_size=3)}),
    ),
    st.tuples(
        st.just("add_observations"),
        st.fixed_dictionaries(
            {
                "observations": st.lists(
                    st.fixed_dictionaries({"entityName": names, "contents": contents}), max_size=2
                )
            }
        ),
    ),
    st.tuples(
        st.just("delete_entities"),
        st.fixed_dictionaries({"entityNames": st.lists(names, max_size=2)}),
    ),
    st.tuples(
        st.just("delete_observations"),
        st.fixed_dictionaries(
            {
                "deletions": st.lists(
                    st.fixed_dictionaries({"entityName": names, "observations": contents}),
                    max_size=2,
                )
            }
        ),
    ),
    st.tuples(
        st.just("delete_relations"),
        st.fixed_dictionaries({"relations": st.lists(relation, max_size=2)}),
    ),
    st.tuples(st.just("read_graph"), st.just({})),
    st.tuples(
        st.just("search_nodes"),
        st.fixed_dictionaries({"query": st.sampled_from(["", "a", "x", "T"])}),
    ),
    st.tuples(st.just("open_nodes"), st.fixed_dictionaries({"names": st.lists(names, max_size=2)})),
)


class Recorder:
    """``call_memory_tool`` that records the order calls ran in and how many overlapped."""

    def __init__(self) -> None:
        self.order: list[tuple[str, str, str]] = []  # (namespace, tool, arguments json)
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}

    async def __call__(
        self,
        graph: KnowledgeGraph,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        agent: str | None = None,
        conversation_id: str | None = None,
    ) -> ToolOutcome:
        ns = graph.namespace
        self.order.append((ns, name, json.dumps(arguments, sort_keys=True)))
        self.running[ns] = self.running.get(ns, 0) + 1
        self.most[ns] = max(self.most.get(ns, 0), self.running[ns])
        try:
            await anyio.lowlevel.checkpoint()  # give another call the chance to overlap
            return await call_memory_tool(
                graph, name, arguments, agent=agent, conversation_id=conversation_id
            )
        finally:
            self.running[ns] -= 1


def clocked(store: SqliteGraphStore, compat: Compat, namespace: str = "default") -> KnowledgeGraph:
    return KnowledgeGraph(store, compat=compat, namespace=namespace, clock=lambda: FIXED_TIME)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(calls, min_size=1, max_size=25), compat=st.sampled_from(list(Compat)))
async def test_concurrent_calls_through_the_actor_equal_the_same_applied_one_by_one(
    ops: list[Call], compat: Compat
) -> None:
    actor_store, sequential_store = SqliteGraphStore(":memory:"), SqliteGraphStore(":memory:")
    recorder = Recorder()
    memory = Memory(actor_store, recorder, compat=compat)
    replies: dict[int, tuple[str, bool]] = {}
    try:
        async with open_system() as system:
            memory.start(system)

            async def submit(index: int, op: Call) -> None:
                reply = await memory.call("u1", op[0], json.dumps(op[1]))
                replies[index] = (reply.text, reply.is_error)

            async with anyio.create_task_group() as callers:
                for index, op in enumerate(ops):
                    callers.start_soon(submit, index, op)
        assert recorder.most == {"u1": 1}  # never two calls on one graph at once
        sequential = clocked(sequential_store, compat, "u1")
        expected = []
        for _, name, arguments in recorder.order:
            outcome = await call_memory_tool(sequential, name, json.loads(arguments))
            expected.append((outcome.text, outcome.is_error))
        # The replies, in the order the actor ran the calls, are the sequential ones.
        ran = [json.dumps(op[1], sort_keys=True) for op in ops]
        by_order: list[tuple[str, bool]] = []
        used: set[int] = set()
        for _, name, arguments in recorder.order:
            index = next(
                i
                for i, op in enumerate(ops)
                if i not in used and op[0] == name and ran[i] == arguments
            )
            used.add(index)
            by_order.append(replies[index])
        assert by_order == expected
        final = await call_memory_tool(clocked(actor_store, compat, "u1"), "read_graph", {})
        assert final.text == (await call_memory_tool(sequential, "read_graph", {})).text
    finally:
        await actor_store.aclose()
        await sequential_store.aclose()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteGraphStore]:
    async with open_sqlite_graph_store(tmp_path / "memory.db") as s:
        yield s


async def test_twenty_concurrent_read_then_write_callers_lose_nothing(
    store: SqliteGraphStore,
) -> None:
    memory = Memory(store, call_memory_tool)
    entity = {"entities": [{"name": "hub", "entityType": "t", "observations": []}]}
    async with open_system() as system:
        memory.start(system)
        await memory.call("u", "create_entities", json.dumps(entity))
        async with anyio.create_task_group() as tg:
            for i in range(20):
                add = {"observations": [{"entityName": "hub", "contents": [f"o{i}"]}]}
                tg.start_soon(memory.call, "u", "add_observations", json.dumps(add))
        reply = await memory.call("u", "open_nodes", '{"names": ["hub"]}')
    observations = json.loads(reply.text)["entities"][0]["observations"]
    assert sorted(observations) == sorted(f"o{i}" for i in range(20))


async def test_namespaces_never_mix_and_run_side_by_side(store: SqliteGraphStore) -> None:
    recorder = Recorder()
    memory = Memory(store, recorder)
    async with open_system() as system:
        memory.start(system)
        async with anyio.create_task_group() as tg:
            for user in ("ann", "bob"):
                payload = {"entities": [{"name": user, "entityType": "person", "observations": []}]}
                tg.start_soon(memory.call, user, "create_entities", json.dumps(payload))
        ann = json.loads((await memory.call("ann", "read_graph")).text)
    assert [e["name"] for e in ann["entities"]] == ["ann"]
    assert set(recorder.most) == {"ann", "bob"}


async def test_a_missing_entity_is_an_error_reply_in_the_reference_words(
    store: SqliteGraphStore,
) -> None:
    memory = Memory(store, call_memory_tool)
    async with open_system() as system:
        memory.start(system)
        add = {"observations": [{"entityName": "Nobody", "contents": ["x"]}]}
        reply = await memory.call("u", "add_observations", json.dumps(add))
        bad = await memory.call("u", "search_nodes", "{}")
    assert (reply.text, reply.is_error) == ("Entity with name Nobody not found", True)
    assert bad.is_error
    assert "expected string, received undefined at query" in bad.text


async def test_memory_tools_use_the_callers_user_and_record_provenance(
    store: SqliteGraphStore,
) -> None:
    memory = Memory(store, call_memory_tool)
    tools = create_memory_tools(memory, {n: TOOLS[n].declaration() for n in TOOLS})
    assert tools["search_nodes"].name == "memory_search_nodes"
    assert "$schema" not in tools["search_nodes"].spec.parameters
    context = ToolContext(conversation_id="c1", agent="triage", call_id="k1", user="ann")
    async with open_system() as system:
        memory.start(system)
        create = {
            "entities": [
                {"name": "customer", "entityType": "person", "observations": ["likes tea"]}
            ]
        }
        await tools["create_entities"].invoke(json.dumps(create), context)
        with pytest.raises(ToolError, match="Entity with name Nobody not found"):
            await tools["add_observations"].invoke(
                '{"observations": [{"entityName": "Nobody", "contents": ["x"]}]}', context
            )
        with pytest.raises(ToolArgumentsError, match=r"Object missing required field `query`"):
            await tools["search_nodes"].invoke("{}", context)
        other = ToolContext(conversation_id="c2", agent="triage", call_id="k2")
        assert json.loads(await tools["read_graph"].invoke("{}", other))["entities"] == []
    written = await KnowledgeGraph(store, namespace="ann").observations("customer")
    assert [(o.content, o.provenance.agent, o.provenance.conversation_id) for o in written] == [
        ("likes tea", "triage", "c1")
    ]
