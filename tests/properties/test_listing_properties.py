"""Properties of the listing query (``runtime/_listing.py``) and of SQLite's answer to it.

For any heads and any query, following ``next_cursor`` from the first page visits exactly
the heads that pass the filters, each once, newest update first (ties by id), in pages of
at most ``limit``; and the SQLite store answers every page as the reference does.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from relaybaton.runtime._listing import HeadQuery, matches, select_heads
from relaybaton.runtime._store import Head, WriteBatch
from relaybaton.stores import SqliteStore
from relaybaton.stores._listing_sql import listing_query
from tests.properties._profile import machine_settings

STATUSES = ("active", "awaiting_approval", "paused", "closed")
OWNERS = ("triage", "billing", "person:ana", None)

heads_strategy = st.lists(
    st.builds(
        lambda n, epoch, owner, status, at: Head(
            conversation_id=f"c{n:03d}",
            seq=1,
            epoch=epoch,
            owner=owner,
            status=status,
            unfinished=False,
            updated_at=float(at),
        ),
        st.integers(0, 999),
        st.integers(0, 3),
        st.sampled_from(OWNERS),
        st.sampled_from(STATUSES),
        st.integers(0, 20),  # few distinct times: ties are the hard case
    ),
    max_size=40,
    unique_by=lambda h: h.conversation_id,
)

query_strategy = st.builds(
    HeadQuery,
    statuses=st.lists(st.sampled_from(STATUSES), max_size=2, unique=True).map(tuple),
    owner=st.sampled_from((None, *[o for o in OWNERS if o is not None])),
    updated_after=st.none() | st.integers(0, 20).map(float),
    updated_before=st.none() | st.integers(0, 20).map(float),
    limit=st.integers(1, 7),
)


def pages(heads: list[Head], query: HeadQuery) -> list[list[Head]]:
    out: list[list[Head]] = []
    cursor: str | None = None
    while True:
        page = select_heads(heads, msgspec.structs.replace(query, cursor=cursor))
        out.append(page.heads)
        cursor = page.next_cursor
        if cursor is None:
            return out


@machine_settings(max_examples=150, steps=1)
@given(heads=heads_strategy, query=query_strategy)
def test_following_the_cursor_visits_every_match_once_newest_first(
    heads: list[Head], query: HeadQuery
) -> None:
    visited = pages(heads, query)
    flat = [h for page in visited for h in page]
    expected = sorted(
        (h for h in heads if matches(query, h.status, h.owner, h.updated_at)),
        key=lambda h: (h.updated_at, h.conversation_id),
        reverse=True,
    )
    assert flat == expected
    assert all(len(page) <= query.limit for page in visited)
    assert all(visited[:-1])  # only the last page may be empty


@machine_settings(max_examples=40, steps=1)
@given(heads=heads_strategy, query=query_strategy)
def test_sqlite_answers_every_page_as_the_reference(heads: list[Head], query: HeadQuery) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "journal.db"
        store = SqliteStore(path)
        try:
            store.write_sync(WriteBatch(heads={h.conversation_id: h for h in heads}))
        finally:
            store._close_sync()
        conn = sqlite3.connect(path)
        try:
            cursor: str | None = None
            for expected in pages(heads, query):
                text, params = listing_query(
                    msgspec.structs.replace(query, cursor=cursor),
                    "conversation_id",
                    table="heads",
                    mark="?",
                )
                rows = [r[0] for r in conn.execute(text, params).fetchall()][: query.limit]
                assert rows == [h.conversation_id for h in expected]
                cursor = select_heads(
                    heads, msgspec.structs.replace(query, cursor=cursor)
                ).next_cursor
        finally:
            conn.close()
