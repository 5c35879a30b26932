"""Where the released reference and the strict mode differ, and where they agree."""

from __future__ import annotations

import pytest

from relaybaton.errors import EntityNotFoundError
from relaybaton.memory import (
    Compat,
    Entity,
    GraphStore,
    KnowledgeGraph,
    ObservationAddition,
    ObservationDeletion,
    Relation,
)

pytestmark = pytest.mark.anyio


async def test_released_keeps_in_batch_duplicates_like_npm_2026_8_31(
    released: KnowledgeGraph,
) -> None:
    added = await released.create_entities(
        [
            Entity(name="A", entity_type="t", observations=("x", "x")),
            Entity(name="A", entity_type="u"),
        ]
    )
    assert [(e.entity_type, e.observations) for e in added] == [("t", ("x", "x")), ("u", ())]
    results = await released.add_observations(
        [ObservationAddition(entity_name="A", contents=("y", "y", "x"))]
    )
    assert results[0].added_observations == ("y", "y")  # only the first "A" receives them
    rel = Relation(from_="A", to="Nobody", relation_type="r")
    assert await released.create_relations([rel, rel]) == [rel, rel]
    await released.delete_observations([ObservationDeletion(entity_name="A", observations=("y",))])
    view = await released.open_nodes(["A"])
    assert [e.observations for e in view.entities] == [("x", "x"), ()]
    assert view.relations == (rel, rel)
    await released.delete_entities(["A"])
    assert (await released.read_graph()).entities == ()


async def test_strict_drops_in_batch_duplicates_keeping_the_first(strict: KnowledgeGraph) -> None:
    added = await strict.create_entities(
        [
            Entity(name="A", entity_type="t", observations=("x", "x")),
            Entity(name="A", entity_type="u"),
        ]
    )
    assert added == [Entity(name="A", entity_type="t", observations=("x",))]
    results = await strict.add_observations(
        [ObservationAddition(entity_name="A", contents=("y", "y", "x"))]
    )
    assert results[0].added_observations == ("y",)
    rel = Relation(from_="A", to="A", relation_type="r")
    assert await strict.create_relations([rel, rel]) == [rel]


async def test_strict_refuses_relations_to_missing_entities_and_adds_none(
    strict: KnowledgeGraph,
) -> None:
    await strict.create_entities([Entity(name="A", entity_type="t")])
    good = Relation(from_="A", to="A", relation_type="self")
    bad = Relation(from_="Ghost", to="Nobody", relation_type="r")
    with pytest.raises(EntityNotFoundError, match=r"^Entity with name Ghost not found$") as caught:
        await strict.create_relations([good, bad])
    assert caught.value.name == "Ghost"
    assert (await strict.read_graph()).relations == ()


async def test_compat_accepts_its_string_values(store: GraphStore) -> None:
    assert KnowledgeGraph(store, compat="released").compat is Compat.RELEASED  # type: ignore[arg-type]
    assert KnowledgeGraph(store).compat is Compat.STRICT
    with pytest.raises(ValueError, match="'loose' is not a valid Compat"):
        KnowledgeGraph(store, compat="loose")  # type: ignore[arg-type]
