"""Each of the nine operations, asserted on exact result shapes and messages."""

from __future__ import annotations

import pytest

from relaybaton.errors import EntityNotFoundError, GraphError
from relaybaton.memory import (
    Entity,
    GraphStore,
    KnowledgeGraph,
    ObservationAddition,
    ObservationDeletion,
    Relation,
)
from relaybaton.memory._types import to_wire

pytestmark = pytest.mark.anyio


def E(name: str, kind: str = "person", *obs: str) -> Entity:  # noqa: N802 - reads like a literal
    return Entity(name=name, entity_type=kind, observations=obs)


def R(a: str, b: str, kind: str = "knows") -> Relation:  # noqa: N802 - reads like a literal
    return Relation(from_=a, to=b, relation_type=kind)


async def seed(graph: KnowledgeGraph) -> None:
    await graph.create_entities(
        [E("Alice", "person", "likes tea"), E("Bob", "person", "Drinks Coffee"), E("Acme", "org")]
    )
    await graph.create_relations([R("Alice", "Bob"), R("Bob", "Acme", "works_at")])


async def test_create_entities_returns_wire_shape_and_skips_existing_names(
    strict: KnowledgeGraph,
) -> None:
    added = await strict.create_entities([E("Alice", "person", "a")])
    assert to_wire(added) == [{"name": "Alice", "entityType": "person", "observations": ["a"]}]
    again = await strict.create_entities([E("Alice", "robot", "b"), E("alice", "person")])
    assert [e.name for e in again] == ["alice"]
    graph = await strict.read_graph()
    assert graph.entities[0] == E("Alice", "person", "a")  # nothing merged


async def test_create_relations_skips_existing_triples(strict: KnowledgeGraph) -> None:
    await seed(strict)
    added = await strict.create_relations([R("Alice", "Bob"), R("Alice", "Bob", "likes")])
    assert to_wire(added) == [{"from": "Alice", "to": "Bob", "relationType": "likes"}]


async def test_add_observations_adds_only_new_contents_and_later_items_see_earlier(
    strict: KnowledgeGraph,
) -> None:
    await seed(strict)
    results = await strict.add_observations(
        [
            ObservationAddition(entity_name="Alice", contents=("likes tea", "plays go")),
            ObservationAddition(entity_name="Alice", contents=("plays go", "sings")),
        ]
    )
    assert to_wire(results) == [
        {"entityName": "Alice", "addedObservations": ["plays go"]},
        {"entityName": "Alice", "addedObservations": ["sings"]},
    ]
    (alice,) = (await strict.open_nodes(["Alice"])).entities
    assert alice.observations == ("likes tea", "plays go", "sings")


async def test_add_observations_to_missing_entity_fails_whole_call(strict: KnowledgeGraph) -> None:
    await seed(strict)
    with pytest.raises(EntityNotFoundError, match=r"^Entity with name Nobody not found$"):
        await strict.add_observations(
            [
                ObservationAddition(entity_name="Alice", contents=("new",)),
                ObservationAddition(entity_name="Nobody", contents=("x",)),
            ]
        )
    (alice,) = (await strict.open_nodes(["Alice"])).entities
    assert alice.observations == ("likes tea",)


async def test_delete_entities_removes_relations_at_either_end_and_ignores_unknowns(
    strict: KnowledgeGraph,
) -> None:
    await seed(strict)
    await strict.delete_entities(["Bob", "Nobody"])
    graph = await strict.read_graph()
    assert [e.name for e in graph.entities] == ["Alice", "Acme"]
    assert graph.relations == ()


async def test_delete_observations_removes_exact_matches_and_ignores_unknowns(
    strict: KnowledgeGraph,
) -> None:
    await seed(strict)
    await strict.delete_observations(
        [
            ObservationDeletion(entity_name="Alice", observations=("likes tea", "absent")),
            ObservationDeletion(entity_name="Nobody", observations=("x",)),
            ObservationDeletion(entity_name="Bob", observations=("drinks coffee",)),
        ]
    )
    graph = await strict.read_graph()
    assert [e.observations for e in graph.entities] == [(), ("Drinks Coffee",), ()]


async def test_delete_relations_removes_exact_matches(strict: KnowledgeGraph) -> None:
    await seed(strict)
    await strict.delete_relations([R("Alice", "Bob"), R("Bob", "Acme", "knows")])
    assert (await strict.read_graph()).relations == (R("Bob", "Acme", "works_at"),)


async def test_read_graph_keeps_file_order_and_recreated_entity_goes_last(
    strict: KnowledgeGraph,
) -> None:
    await seed(strict)
    await strict.delete_entities(["Alice"])
    await strict.create_entities([E("Alice")])
    assert [e.name for e in (await strict.read_graph()).entities] == ["Bob", "Acme", "Alice"]


async def test_search_nodes_is_case_insensitive_substring_with_either_end_relations(
    strict: KnowledgeGraph,
) -> None:
    await seed(strict)
    found = await strict.search_nodes("COFFEE")
    assert [e.name for e in found.entities] == ["Bob"]
    assert found.relations == (R("Alice", "Bob"), R("Bob", "Acme", "works_at"))
    assert [e.name for e in (await strict.search_nodes("")).entities] == ["Alice", "Bob", "Acme"]
    assert [e.name for e in (await strict.search_nodes("ORG")).entities] == ["Acme"]
    # Relation types are not searched by default.
    assert (await strict.search_nodes("works_at")).entities == ()


async def test_search_nodes_lowercases_non_ascii_like_javascript(strict: KnowledgeGraph) -> None:
    await strict.create_entities([E("Émile", "person", "ÇA VA")])
    assert [e.name for e in (await strict.search_nodes("ém")).entities] == ["Émile"]
    assert [e.name for e in (await strict.search_nodes("ça")).entities] == ["Émile"]


async def test_open_nodes_returns_graph_order_and_relations_touching_either_end(
    strict: KnowledgeGraph,
) -> None:
    await seed(strict)
    view = await strict.open_nodes(["Acme", "Alice", "Nobody"])
    assert to_wire(view) == {
        "entities": [
            {"name": "Alice", "entityType": "person", "observations": ["likes tea"]},
            {"name": "Acme", "entityType": "org", "observations": []},
        ],
        "relations": [
            {"from": "Alice", "to": "Bob", "relationType": "knows"},
            {"from": "Bob", "to": "Acme", "relationType": "works_at"},
        ],
    }


async def test_ranked_search_orders_by_relevance_searches_relation_types_and_limits(
    strict: KnowledgeGraph,
) -> None:
    await seed(strict)
    await strict.create_entities([E("Tea House", "place", "serves tea and more tea")])
    ranked = await strict.search_nodes("tea", ranked=True)
    assert [e.name for e in ranked.entities] == ["Tea House", "Alice"]
    by_relation = await strict.search_nodes("works", ranked=True)
    assert [e.name for e in by_relation.entities] == ["Bob", "Acme"]
    limited = await strict.search_nodes("tea", ranked=True, limit=1)
    assert [e.name for e in limited.entities] == ["Tea House"]
    assert (await strict.search_nodes("!!!", ranked=True)).entities == ()


async def test_read_page_walks_lines_in_file_order(strict: KnowledgeGraph) -> None:
    await seed(strict)
    first = await strict.read_page(limit=2)
    assert ([e.name for e in first.entities], first.relations, first.next_offset, first.total) == (
        ["Alice", "Bob"],
        (),
        2,
        5,
    )
    second = await strict.read_page(offset=2, limit=2)
    assert [e.name for e in second.entities] == ["Acme"]
    assert second.relations == (R("Alice", "Bob"),)
    last = await strict.read_page(offset=4, limit=2)
    assert (last.relations, last.next_offset) == ((R("Bob", "Acme", "works_at"),), None)
    with pytest.raises(ValueError, match="Expected offset >= 0 and limit >= 1, got 0 and 0"):
        await strict.read_page(limit=0)


async def test_neighbours_reach_entities_within_hops(strict: KnowledgeGraph) -> None:
    await seed(strict)
    one = await strict.neighbours(["Alice"], hops=1)
    assert [e.name for e in one.entities] == ["Alice", "Bob"]
    assert one.relations == (R("Alice", "Bob"),)
    two = await strict.neighbours(["Alice"], hops=2)
    assert [e.name for e in two.entities] == ["Alice", "Bob", "Acme"]
    assert len(two.relations) == 2


async def test_observations_carry_provenance(strict: KnowledgeGraph) -> None:
    await strict.create_entities([E("Alice", "person", "a")], agent="triage", conversation_id="c1")
    await strict.add_observations(
        [ObservationAddition(entity_name="Alice", contents=("b",))], agent="expert"
    )
    observations = await strict.observations("Alice")
    written = [(o.content, o.provenance.agent, o.provenance.conversation_id) for o in observations]
    assert written == [
        ("a", "triage", "c1"),
        ("b", "expert", None),
    ]
    assert observations[0].provenance.at is not None
    with pytest.raises(EntityNotFoundError, match="Entity with name Zed not found"):
        await strict.observations("Zed")


async def test_namespaces_never_mix(store: GraphStore) -> None:
    tenant_a = KnowledgeGraph(store, namespace="a")
    tenant_b = KnowledgeGraph(store, namespace="b")
    await tenant_a.create_entities([E("Alice")])
    await tenant_b.create_entities([E("Alice", "robot")])
    await tenant_b.create_relations([R("Alice", "Alice")])
    assert (await tenant_a.read_graph()).entities == (E("Alice"),)
    assert (await tenant_a.read_graph()).relations == ()
    await tenant_a.delete_entities(["Alice"])
    assert (await tenant_b.read_graph()).entities == (E("Alice", "robot"),)
    assert (await tenant_a.search_nodes("alice", ranked=True)).entities == ()


async def test_graph_error_is_the_base_of_entity_not_found() -> None:
    assert issubclass(EntityNotFoundError, GraphError)
    assert issubclass(EntityNotFoundError, LookupError)
