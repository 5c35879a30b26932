"""Every store lists conversations the same way: filters, order, pages (the listing query).

The stores are those of the conformance suite (memory, SQLite in each durability mode,
PostgreSQL on 127.0.0.1:5432 in a throwaway schema); each answer is compared with the
reference listing (``select_heads``) over the same heads.
"""

from __future__ import annotations

import random

import pytest

from relaybaton.errors import ConfigError
from relaybaton.runtime import Store
from relaybaton.runtime._listing import HeadQuery, select_heads
from relaybaton.runtime._store import Head, WriteBatch
from tests.stores.test_conformance import every_store

pytestmark = pytest.mark.anyio

STATUSES = ("active", "awaiting_approval", "paused", "closed")
OWNERS = ("triage", "billing", "person:ana", None)


def make_heads(count: int, seed: int) -> list[Head]:
    rng = random.Random(seed)
    return [
        Head(
            conversation_id=f"c{n:04d}",
            seq=n + 1,
            epoch=rng.randrange(3),
            owner=rng.choice(OWNERS),
            status=rng.choice(STATUSES),
            unfinished=rng.random() < 0.3,
            # Ties on purpose: the id breaks them, the same way everywhere.
            updated_at=float(rng.randrange(40)),
        )
        for n in range(count)
    ]


async def fill(store: Store, heads: list[Head]) -> None:
    await store.write(WriteBatch(heads={h.conversation_id: h for h in heads}))


async def every_page(store: Store, query: HeadQuery) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await store.list_heads(
            HeadQuery(
                statuses=query.statuses,
                owner=query.owner,
                updated_after=query.updated_after,
                updated_before=query.updated_before,
                limit=query.limit,
                cursor=cursor,
            )
        )
        pages.append([h.conversation_id for h in page.heads])
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 500, "the cursor never ends"


QUERIES = [
    HeadQuery(limit=7),
    HeadQuery(statuses=("paused", "awaiting_approval"), limit=5),
    HeadQuery(owner="person:ana", limit=3),
    HeadQuery(updated_after=10.0, updated_before=30.0, limit=4),
    HeadQuery(statuses=("closed",), owner="billing", updated_after=5.0, limit=2),
    HeadQuery(limit=1000),
]


@every_store
@pytest.mark.parametrize("query", QUERIES, ids=lambda q: repr(q)[:60])
async def test_every_store_pages_a_listing_as_the_reference_does(
    store: Store, query: HeadQuery
) -> None:
    heads = make_heads(120, seed=14)
    await fill(store, heads)
    expected = every_page_of_reference(heads, query)
    assert await every_page(store, query) == expected
    # Newest first, each conversation once, nothing that fails a filter.
    listed = [cid for page in expected for cid in page]
    assert len(listed) == len(set(listed))
    by_id = {h.conversation_id: h for h in heads}
    times = [by_id[cid].updated_at for cid in listed]
    assert times == sorted(times, reverse=True)


def every_page_of_reference(heads: list[Head], query: HeadQuery) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = select_heads(
            heads,
            HeadQuery(
                statuses=query.statuses,
                owner=query.owner,
                updated_after=query.updated_after,
                updated_before=query.updated_before,
                limit=query.limit,
                cursor=cursor,
            ),
        )
        pages.append([h.conversation_id for h in page.heads])
        cursor = page.next_cursor
        if cursor is None:
            return pages


@every_store
async def test_a_listing_shows_the_latest_head_of_each_conversation(store: Store) -> None:
    first = make_heads(3, seed=1)
    await fill(store, first)
    moved = Head(
        conversation_id="c0001",
        seq=9,
        epoch=5,
        owner="person:ana",
        status="paused",
        unfinished=True,
        updated_at=99.0,
    )
    await fill(store, [moved])
    page = await store.list_heads(HeadQuery(limit=1))
    assert page.heads == [moved]
    assert page.next_cursor is not None


@every_store
async def test_a_cursor_the_server_never_gave_is_refused_naming_the_fix(store: Store) -> None:
    with pytest.raises(ConfigError, match="next_cursor of the previous page"):
        await store.list_heads(HeadQuery(cursor="yesterday"))


@every_store
async def test_an_empty_store_lists_one_empty_last_page(store: Store) -> None:
    page = await store.list_heads(HeadQuery())
    assert page.heads == []
    assert page.next_cursor is None
