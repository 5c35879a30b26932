"""Every conversation's journal read back from a store, as the checker's entries.

The bodies are decoded by the runtime's own journal decoder (typed, the same one a node
replays with), so the checker sees exactly what a node taking a conversation over would.
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from relaybaton.adapters import ChatMessage, UserMessage
from relaybaton.runtime import MonotonicClock, Store
from relaybaton.runtime._journal import Journal
from relaybaton.runtime._journal_events import (
    Accepted,
    ApprovalDecided,
    ApprovalRequested,
    JournalRecord,
    Replied,
    Snapshot,
    TurnFailed,
    TurnStarted,
)
from tests.cluster._checker import Entry, FinishedTurn

__all__ = ["entries_of", "read_journals"]


Provenance = list[tuple[int, str, int | None]]
"""Per stored body: the seq it starts at, the node that wrote it, its lease generation."""


async def read_journals(
    store: Store,
    conversation_ids: Iterable[str],
    provenance: Callable[[str], Awaitable[Provenance]] | None = None,
) -> dict[str, list[Entry]]:
    """The journal of each conversation that has one (the others are simply absent).

    ``provenance`` reads who wrote each body (a PostgreSQL journal keeps it beside them).
    """
    journal: Journal[Any] = Journal(store, ChatMessage, clock=MonotonicClock())
    out: dict[str, list[Entry]] = {}
    for cid in sorted(set(conversation_ids)):
        bodies = await store.read(cid)
        if bodies:
            written = await provenance(cid) if provenance is not None else []
            out[cid] = entries_of(journal.decode(bodies), written)
    return out


def entries_of(
    records: Iterable[JournalRecord[Any]], written: Sequence[tuple[int, str, int | None]] = ()
) -> list[Entry]:
    """The checker's entries; each record gets the writer of the body it is stored in."""
    starts = sorted(written, key=lambda row: row[0])
    seqs = [row[0] for row in starts]
    out: list[Entry] = []
    for record in records:
        at = bisect.bisect_right(seqs, record.seq) - 1
        writer, generation = (starts[at][1], starts[at][2]) if at >= 0 else ("", None)
        out.append(_entry(record, writer, generation))
    return out


def _entry(record: JournalRecord[Any], writer: str, generation: int | None) -> Entry:
    event = record.event
    base: dict[str, Any] = {
        "seq": record.seq,
        "epoch": record.epoch,
        "kind": _tag(event),
        "writer": writer,
        "generation": generation,
    }
    match event:
        case Accepted():
            item = event.item
            text = item.text if isinstance(item, UserMessage) else ""
            return Entry(**base, message_id=event.message_id, text=text, started=event.started)
        case TurnStarted():
            return Entry(**base, message_id=event.message_id)
        case Replied():
            return Entry(**base, agent=event.agent, text=event.text)
        case TurnFailed():
            return Entry(**base, agent=event.agent, text=event.error)
        case ApprovalRequested():
            return Entry(**base, approval_id=event.approval_id)
        case ApprovalDecided():
            return Entry(**base, approval_id=event.approval_id, decision=event.decision)
        case Snapshot():
            state = event.state
            finished = tuple(
                FinishedTurn(message_id=mid, replies=tuple((a, t) for a, t in replies), error=error)
                for mid, (replies, error) in state.finished.items()
            )
            still_open = [t.message_id for t in state.inbox]
            if state.active is not None:
                still_open.insert(0, state.active.message_id)
            return Entry(**base, finished=finished, open=tuple(still_open))
    return Entry(**base)


def _tag(event: object) -> str:
    return str(type(event).__struct_config__.tag or "")  # type: ignore[attr-defined]
