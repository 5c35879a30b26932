"""The Store port: where journals live. Memory here; SQLite and PostgreSQL in adapters.

A store keeps, per conversation, its encoded journal bodies (each holds one or more
records; ``seq`` ascending, a snapshot possibly first), a head (epoch, owner, status,
whether a turn is unfinished) for listing, and the approval requests with their
decisions. ``write`` is one transaction: all of the batch or none of it, and it refuses a
conversation whose stored epoch is newer than the batch's (fencing: a writer that lost the
baton cannot write over the new owner).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Protocol, final

import msgspec

from relaybaton.errors import ConflictError, StaleEpochError
from relaybaton.runtime._listing import HeadPage, HeadQuery, select_heads

__all__ = [
    "ApprovalRow",
    "Durability",
    "EncodedRecord",
    "Head",
    "MemoryStore",
    "Store",
    "WriteBatch",
]


class Durability(StrEnum):
    """When a journal write counts as done.

    - ``sync``: a step waits for its records to be committed before it goes on (a reply
      is acknowledged, a tool runs, only after the records before it are on disk);
    - ``batched``: records are committed in groups within a bounded delay; a crash can
      lose the last few milliseconds of records, never reorder them;
    - ``off``: records are written without waiting and without flushing to disk.
    """

    SYNC = "sync"
    BATCHED = "batched"
    OFF = "off"


class EncodedRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One stored body: a conversation's consecutive records from ``seq`` on.

    ``epoch`` is the last record's, ``kind`` the first one's tag (a snapshot always starts
    a body); the store reads neither, they are there for people querying it.
    """

    conversation_id: str
    seq: int
    epoch: int
    kind: str
    body: bytes


class Head(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A conversation's summary row, as of its last record in a batch (``updated_at``: when
    that batch was committed, in wall-clock seconds since the epoch)."""

    conversation_id: str
    seq: int
    epoch: int
    owner: str | None
    status: str
    unfinished: bool
    updated_at: float


class ApprovalRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An approval request; ``decision`` is empty while it waits."""

    approval_id: str
    conversation_id: str
    request: bytes
    decision: str = ""


class WriteBatch(msgspec.Struct, kw_only=True):
    """What one transaction writes."""

    records: list[EncodedRecord] = msgspec.field(default_factory=list)
    heads: dict[str, Head] = msgspec.field(default_factory=dict)
    approvals: list[ApprovalRow] = msgspec.field(default_factory=list)
    prune: dict[str, int] = msgspec.field(default_factory=dict)


class Store(Protocol):
    """Durable storage for journals; every adapter passes one conformance suite."""

    async def write(self, batch: WriteBatch) -> None:
        """Commit the batch atomically.

        Pruning removes a conversation's bodies whose ``seq`` is below the given one (a
        snapshot covers them). Raises ``StaleEpochError`` if a conversation's stored epoch
        is newer than the batch's head for it, and ``ConflictError`` if the batch decides an
        approval the store holds decided otherwise (``check_decisions``); nothing is
        written then.
        """
        ...

    async def read(self, conversation_id: str) -> list[bytes]:
        """The conversation's bodies, oldest first (a snapshot may lead)."""
        ...

    async def heads(self, *, unfinished_only: bool = False) -> list[Head]:
        """Every conversation's head (or only those with an unfinished turn)."""
        ...

    async def approvals(self, *, pending_only: bool = True) -> list[ApprovalRow]:
        """Approval requests, oldest first."""
        ...

    async def approval(self, approval_id: str) -> ApprovalRow | None:
        """The approval request with this id, decided or not (None if the store has none).

        One lookup by key, not a listing: deciding one approval must not read them all.
        """
        ...

    async def list_heads(self, query: HeadQuery) -> HeadPage:
        """One page of heads, newest update first, as ``_listing.select_heads`` gives it."""
        ...

    async def aclose(self) -> None:
        """Release connections; idempotent."""
        ...


def check_fence(stored_epoch: int | None, head: Head) -> None:
    """Raise ``StaleEpochError`` if the store holds a newer epoch than the writer's."""
    if stored_epoch is not None and stored_epoch > head.epoch:
        raise StaleEpochError(head.conversation_id, head.epoch, stored_epoch)


@final
class MemoryStore:
    """A store in a dict, for tests and for runs that need no durability."""

    def __init__(self) -> None:
        self.records: dict[str, dict[int, EncodedRecord]] = {}
        self.head_rows: dict[str, Head] = {}
        self.approval_rows: dict[str, ApprovalRow] = {}
        self.transactions = 0

    async def write(self, batch: WriteBatch) -> None:
        for conversation_id, head in batch.heads.items():
            stored = self.head_rows.get(conversation_id)
            check_fence(stored.epoch if stored else None, head)
        check_decisions(
            {r.approval_id: r.decision for r in self.approval_rows.values()}, batch.approvals
        )
        for record in batch.records:
            self.records.setdefault(record.conversation_id, {})[record.seq] = record
        self.head_rows.update(batch.heads)
        for row in batch.approvals:
            stored_row = self.approval_rows.get(row.approval_id)
            self.approval_rows[row.approval_id] = (
                row if stored_row is None else combine_approval_rows(stored_row, row)
            )
        for conversation_id, upto in batch.prune.items():
            records = self.records.get(conversation_id, {})
            for seq in [s for s in records if s < upto]:
                del records[seq]
        self.transactions += 1

    async def read(self, conversation_id: str) -> list[bytes]:
        records = self.records.get(conversation_id, {})
        return [records[seq].body for seq in sorted(records)]

    async def heads(self, *, unfinished_only: bool = False) -> list[Head]:
        rows = sorted(self.head_rows.values(), key=lambda h: h.updated_at)
        return [h for h in rows if h.unfinished or not unfinished_only]

    async def approvals(self, *, pending_only: bool = True) -> list[ApprovalRow]:
        return [a for a in self.approval_rows.values() if not (pending_only and a.decision)]

    async def approval(self, approval_id: str) -> ApprovalRow | None:
        return self.approval_rows.get(approval_id)

    async def list_heads(self, query: HeadQuery) -> HeadPage:
        return select_heads(self.head_rows.values(), query)

    async def aclose(self) -> None:
        return None


def check_decisions(decided: Mapping[str, str], rows: Sequence[ApprovalRow]) -> None:
    """Refuse a row that decides an approval the store holds decided otherwise.

    A decision is single-use (``runtime/_approvals.py``), and the store keeps that even
    against a writer whose conversation is out of date: a second decision would silently
    replace the one a person took, and the step would run (or not) against their word. The
    same decision written again (a batch retried after an unknown outcome) passes.

    Raises:
        ConflictError: naming the approval and the decision taken first.
    """
    for row in rows:
        first = decided.get(row.approval_id, "")
        if row.decision and first and row.decision != first:
            raise ConflictError(
                f"approval {row.approval_id!r} of conversation {row.conversation_id!r} was "
                f"decided already: {first}; a decision is single-use, so {row.decision!r} "
                "was not recorded",
                conversation_id=row.conversation_id,
                changed=first,
            )


def combine_approval_rows(stored: ApprovalRow, row: ApprovalRow) -> ApprovalRow:
    """What a store keeps when ``row`` arrives for an approval it holds as ``stored``.

    A decision row carries no request (the journal writes ``request=b""``), so the stored
    request stays; a decision, once taken, is never undone by a later empty one.
    """
    return ApprovalRow(
        approval_id=row.approval_id,
        conversation_id=row.conversation_id,
        request=row.request or stored.request,
        decision=row.decision or stored.decision,
    )


def merge_approval_rows(rows: Sequence[ApprovalRow]) -> list[ApprovalRow]:
    """Collapse several rows for one approval in a batch to one, first seen first."""
    merged: dict[str, ApprovalRow] = {}
    for row in rows:
        stored = merged.get(row.approval_id)
        merged[row.approval_id] = row if stored is None else combine_approval_rows(stored, row)
    return list(merged.values())
