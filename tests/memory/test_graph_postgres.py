"""What only the PostgreSQL graph store does: reconnecting, and refusing a newer schema."""

from __future__ import annotations

import psycopg
import pytest

from relaybaton.errors import StoreError
from relaybaton.memory import Entity, KnowledgeGraph, ObservationAddition
from relaybaton.memory._postgres import SCHEMA_VERSION, PostgresGraphStore
from tests._postgres import PG_DSN, drop_schema, require_postgres, throwaway_schema

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_an_operation_after_the_server_killed_the_connection_runs_on_a_new_one() -> None:
    require_postgres()
    schema = throwaway_schema()
    store = PostgresGraphStore(PG_DSN, schema=schema, application_name=schema)
    try:
        graph = KnowledgeGraph(store)
        await graph.create_entities([Entity(name="hub", entity_type="t")])
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (schema,),
            )
        await graph.add_observations([ObservationAddition(entity_name="hub", contents=("x",))])
        assert (await graph.read_graph()).entities[0].observations == ("x",)
        assert store.reconnects == 1
    finally:
        await store.aclose()
        drop_schema(schema)


async def test_a_schema_written_by_a_newer_relaybaton_is_refused() -> None:
    require_postgres()
    schema = throwaway_schema()
    try:
        first = PostgresGraphStore(PG_DSN, schema=schema)
        await first.connect()
        await first.aclose()
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(
                f"UPDATE {schema}.meta SET value = %s WHERE key = 'graph_schema_version'",
                (str(SCHEMA_VERSION + 1),),
            )
        again = PostgresGraphStore(PG_DSN, schema=schema)
        with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, this"):
            await again.connect()
        await again.aclose()
    finally:
        drop_schema(schema)
