"""Each journal body records the node that wrote it and the lease generation it wrote under,
so an audit (the fault tests' history checker) can show no two nodes wrote under one lease."""

from __future__ import annotations

import psycopg
import pytest

from relaybaton.cluster import partition_of
from relaybaton.stores import PostgresStore
from tests._postgres import PG_DSN
from tests.cluster._records import batch

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

PARTITIONS = 8


def provenance(schema: str, conversation_id: str) -> list[tuple[int, str, int | None]]:
    with psycopg.connect(PG_DSN) as conn:
        rows = conn.execute(
            f'SELECT seq, writer, generation FROM "{schema}".records'
            " WHERE conversation_id = %s ORDER BY seq",
            (conversation_id,),
        ).fetchall()
    return [(int(s), str(w), g) for s, w, g in rows]


async def test_a_node_s_bodies_name_it_and_its_lease_generation(schema: str) -> None:
    partition = partition_of("c1", PARTITIONS)
    generations = {partition: 7}
    store = PostgresStore(
        PG_DSN, schema=schema, fencing=lambda c: (partition, generations[partition])
    )
    store.writer = "node-a"
    try:
        await store.raise_fence(partition, 7)
        await store.write(batch("c1", 1))
        generations[partition] = 9  # a later lease of the same node
        await store.raise_fence(partition, 9)
        await store.write(batch("c1", 2))
    finally:
        await store.aclose()
    assert provenance(schema, "c1") == [(1, "node-a", 7), (2, "node-a", 9)]


async def test_outside_a_cluster_the_writer_is_unnamed(schema: str) -> None:
    store = PostgresStore(PG_DSN, schema=schema)
    try:
        await store.write(batch("c2", 1))
    finally:
        await store.aclose()
    assert provenance(schema, "c2") == [(1, "", None)]
