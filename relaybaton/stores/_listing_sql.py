"""SQL both journal stores share: the listing query (``relaybaton.runtime``'s ``HeadQuery``)
and the approvals' columns, for SQLite and PostgreSQL.

Both answer it from the ``heads`` table, newest update first, with keyset pagination on
(``updated_at``, ``conversation_id``): the cursor's row values bound the page, so the cost
of a page is an index range scan of the page's size whatever the table holds. The index
is created when a store opens (``HEADS_INDEX``), also on journals made before it existed.
"""

from __future__ import annotations

from relaybaton.runtime._listing import HeadQuery, decode_cursor
from relaybaton.runtime._store import ApprovalRow

__all__ = ["APPROVAL_COLUMNS", "HEADS_INDEX", "approval_row", "listing_query"]

APPROVAL_COLUMNS = "approval_id, conversation_id, request, decision"
"""The columns ``approval_row`` reads, in its order."""


def approval_row(row: tuple[str, str, bytes, str]) -> ApprovalRow:
    """An approvals row (``APPROVAL_COLUMNS``); the driver may give a memoryview for bytes."""
    a, c, r, d = row
    return ApprovalRow(approval_id=a, conversation_id=c, request=bytes(r), decision=d)


#: Created if missing when a store opens; ``{s}`` is the schema prefix (empty for SQLite).
HEADS_INDEX = "CREATE INDEX IF NOT EXISTS heads_by_update ON {s}heads (updated_at, conversation_id)"


def listing_query(
    query: HeadQuery, columns: str, *, table: str, mark: str
) -> tuple[str, list[object]]:
    """The statement and its parameters; ``mark`` is the driver's placeholder (? or %s)."""
    where: list[str] = []
    params: list[object] = []
    if query.statuses:
        where.append(f"status IN ({', '.join([mark] * len(query.statuses))})")
        params.extend(query.statuses)
    if query.owner is not None:
        where.append(f"owner = {mark}")
        params.append(query.owner)
    if query.updated_after is not None:
        where.append(f"updated_at >= {mark}")
        params.append(query.updated_after)
    if query.updated_before is not None:
        where.append(f"updated_at < {mark}")
        params.append(query.updated_before)
    if query.cursor:
        at, conversation_id = decode_cursor(query.cursor)
        where.append(f"(updated_at, conversation_id) < ({mark}, {mark})")
        params.extend([at, conversation_id])
    text = f"SELECT {columns} FROM {table}"
    if where:
        text += " WHERE " + " AND ".join(where)
    text += f" ORDER BY updated_at DESC, conversation_id DESC LIMIT {mark}"
    params.append(query.limit + 1)
    return text, params
