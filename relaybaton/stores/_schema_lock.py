"""The lock under which a process creates things in a PostgreSQL schema.

The journal (``_postgres.py``), the store hold's table (``_hold_postgres.py``) and the
knowledge graph (``memory/_postgres.py``) may share one schema, and two processes running
``CREATE ... IF NOT EXISTS`` in it at once collide in the catalog instead of one waiting for
the other. So each of them creates its tables in a transaction that first takes this one
advisory lock, keyed by the schema's name: the same key for all of them, and the same as
earlier releases took, so that processes of both kinds still wait for each other.
"""

from __future__ import annotations

from psycopg import sql

__all__ = ["schema_lock"]


def schema_lock(schema: str) -> sql.Composed:
    """The statement that takes ``schema``'s creation lock until its transaction ends.

    Run it first in the transaction that creates the schema or its tables; it works on a
    synchronous connection as on an asynchronous one.
    """
    return sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(
        sql.Literal(f"relaybaton schema {schema}")
    )
