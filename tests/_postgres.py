"""The PostgreSQL server the store and graph tests use, and throwaway schemas on it.

The server is 127.0.0.1:5432, database ``test`` (``RELAYBATON_TEST_POSTGRES_DSN``
overrides it). Where none answers, the Postgres cases are skipped with the reason,
except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import uuid

import pytest

PG_DSN = os.environ.get("RELAYBATON_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_problem() -> str | None:
    """Why the Postgres cases cannot run here, or None when they can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install -e '.[dev]'"
    try:
        psycopg.connect(PG_DSN, connect_timeout=2).close()
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = psycopg.conninfo.conninfo_to_dict(PG_DSN)
        return (
            f"PostgreSQL is not answering on {where.get('host')}:{where.get('port', 5432)}:"
            " start it with"
            " `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
            f" and create the database `test` ({first_line})"
        )
    return None


_postgres_checked: list[str | None] = []


def require_postgres() -> None:
    """Skip (or under CI=true, fail) the calling test when no PostgreSQL answers."""
    if not _postgres_checked:
        _postgres_checked.append(_postgres_problem())
    problem = _postgres_checked[0]
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires PostgreSQL: {problem}", pytrace=False)
    pytest.skip(problem)


def throwaway_schema() -> str:
    """A fresh schema name for one test; drop it with :func:`drop_schema`."""
    return f"rb_graph_test_{uuid.uuid4().hex[:12]}"


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
