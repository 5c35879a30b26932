"""Listing conversations: the query every store answers the same way, a page at a time.

A listing reads heads (one row per conversation: owner, epoch, status, last update), newest
update first, filtered by status, owner and a time window, and cut into pages by a cursor
(the last row's update time and id), so a page costs the same however many conversations
are stored and a conversation updated while someone pages does not appear twice on one
page. ``select_heads`` is the reference implementation (the in-memory store and a runtime
with no store use it); SQLite and PostgreSQL answer the same query in SQL, and the store
conformance suite checks that all of them agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

import msgspec

from relaybaton.errors import ConfigError

if TYPE_CHECKING:  # _store imports this module for MemoryStore
    from relaybaton.runtime._store import Head

__all__ = [
    "HeadPage",
    "HeadQuery",
    "decode_cursor",
    "encode_cursor",
    "matches",
    "page_of",
    "select_heads",
]


class HeadQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What to list: every filter given must hold (``statuses``: any of them)."""

    statuses: tuple[str, ...] = ()
    owner: str | None = None
    updated_after: float | None = None
    updated_before: float | None = None
    cursor: str | None = None
    limit: int = 50


@final
@dataclass(frozen=True, slots=True)
class HeadPage:
    """One page of heads, and the cursor of the next one (None: this is the last)."""

    heads: list[Head]
    next_cursor: str | None


def encode_cursor(updated_at: float, conversation_id: str) -> str:
    """The cursor that continues after the row (``updated_at``, ``conversation_id``)."""
    return f"{updated_at!r}~{conversation_id}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (update time, id) a cursor continues after; ``ConfigError`` if malformed."""
    at, sep, conversation_id = cursor.partition("~")
    try:
        value = float(at)
    except ValueError:
        value = float("nan")
    if not sep or not conversation_id or value != value:  # noqa: PLR0124 - NaN check
        raise ConfigError(
            f"cursor {cursor[:60]!r} is not one this server gave; pass the next_cursor of "
            "the previous page, or none for the first page"
        )
    return value, conversation_id


def matches(query: HeadQuery, status: str, owner: str | None, updated_at: float) -> bool:
    """Whether a head passes the query's filters (not the cursor)."""
    return (
        (not query.statuses or status in query.statuses)
        and (query.owner is None or owner == query.owner)
        and (query.updated_after is None or updated_at >= query.updated_after)
        and (query.updated_before is None or updated_at < query.updated_before)
    )


def select_heads(heads: Iterable[Head], query: HeadQuery) -> HeadPage:
    """The reference listing over heads in memory."""
    after = decode_cursor(query.cursor) if query.cursor else None
    rows = [
        h
        for h in heads
        if matches(query, h.status, h.owner, h.updated_at)
        and (after is None or (h.updated_at, h.conversation_id) < after)
    ]
    rows.sort(key=lambda h: (h.updated_at, h.conversation_id), reverse=True)
    return page_of(rows[: query.limit + 1], query.limit)


def page_of(rows: list[Head], limit: int) -> HeadPage:
    """A page from up to ``limit + 1`` rows in listing order (one more: a next page)."""
    page = rows[:limit]
    if len(rows) <= limit or not page:
        return HeadPage(heads=page, next_cursor=None)
    last = page[-1]
    return HeadPage(heads=page, next_cursor=encode_cursor(last.updated_at, last.conversation_id))
