"""A conversation's timeline rebuilt from its journal, when the event hub has none.

The hub keeps the recent events of conversations that ran since the server started; after
a restart (or for a conversation that aged out of the hub) the journal still holds what
happened since its last snapshot: baton passes, model results with their usage, tool
results, replies, approvals and what people did. They become the same trace events the
live path emits, so the timeline draws them alike. Latencies and routing reasons are not
journaled; those rows say so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from relaybaton.actors import ModelCallEvent, ToolCallEvent
from relaybaton.adapters import ToolResultMessage
from relaybaton.runtime._journal_events import (
    Appended,
    ApprovalDecided,
    ApprovalRequested,
    BatonAccepted,
    BatonReturned,
    HandedOff,
    JournalRecord,
    Replied,
    TurnFailed,
)
from relaybaton.runtime._operator_events import (
    BatonGiven,
    BatonTaken,
    BreakpointsSet,
    Forked,
    Halted,
    HoldCleared,
    HoldSet,
    NoteAdded,
)
from relaybaton.runtime.messages import (
    ApprovalDecidedEvent,
    ApprovalRequestedEvent,
    HandoffEvent,
    OperatorEvent,
    ReplyEvent,
)

__all__ = ["NOT_JOURNALED", "trace_from_journal"]

#: The latency of a row rebuilt from the journal: unknown (NaN), shown as such.
NOT_JOURNALED = float("nan")


def trace_from_journal(records: Iterable[JournalRecord[Any]]) -> list[tuple[int, msgspec.Struct]]:
    """Trace events (numbered by journal position) for the records that have one."""
    events: list[tuple[int, msgspec.Struct]] = []
    sender = ""
    for record in records:
        event = _event(record, sender)
        if isinstance(record.event, HandedOff):
            sender = record.event.sender
        if event is not None:
            events.append((record.seq, event))
    return events


def _event(record: JournalRecord[Any], sender: str) -> msgspec.Struct | None:
    event, at, epoch = record.event, record.at, record.epoch
    match event:
        case HandedOff():
            return HandoffEvent(
                action="handoff", sender=event.sender, target=event.target, epoch=event.epoch, at=at
            )
        case BatonAccepted():
            return HandoffEvent(
                action="accept",
                sender=sender or event.agent,
                target=event.agent,
                epoch=event.epoch,
                at=at,
            )
        case BatonReturned():
            return HandoffEvent(
                action="return", sender=event.sender, target=event.target, epoch=event.epoch, at=at
            )
        case Appended() if event.charge is not None:
            charge = event.charge
            return ModelCallEvent(
                agent=charge.agent,
                slot="",
                model=charge.model,
                latency_s=NOT_JOURNALED,
                input_tokens=charge.input_tokens,
                output_tokens=charge.output_tokens,
                cost_usd=charge.cost_usd,
                at=at,
            )
        case Appended() if isinstance(event.item, ToolResultMessage):
            item = event.item
            return ToolCallEvent(
                agent=event.agent,
                tool=item.name,
                call_id=item.call_id,
                tool_kind="function",
                latency_s=NOT_JOURNALED,
                is_error=item.is_error,
                result=item.content[:500],
                at=at,
            )
        case Replied():
            return ReplyEvent(agent=event.agent, text=event.text, epoch=epoch, at=at)
        case TurnFailed():
            return ReplyEvent(agent=event.agent, text="", epoch=epoch, at=at, error=event.error)
        case ApprovalRequested():
            return ApprovalRequestedEvent.of(event)
        case ApprovalDecided():
            return ApprovalDecidedEvent.of(event)
    return _operated(event, epoch, at)


def _operated(event: object, epoch: int, at: float) -> OperatorEvent | None:
    def made(action: str, by: str, detail: str = "", at_epoch: int = epoch) -> OperatorEvent:
        return OperatorEvent(action=action, by=by, epoch=at_epoch, detail=detail, at=at)

    match event:
        case HoldSet():
            return made("pause", event.by, event.reason)
        case HoldCleared():
            return made("resume", event.by)
        case Halted():
            return made("halt", event.agent, event.before)
        case BreakpointsSet():
            return made("breakpoints", event.by, ", ".join(event.breakpoints))
        case NoteAdded():
            return made("note", event.by)
        case BatonTaken():
            return made("take", event.by, event.previous, event.epoch)
        case BatonGiven():
            return made("give", event.by, event.agent, event.epoch)
        case Forked():
            return made("fork", event.by, f"{event.source}[:{event.upto}]", 0)
    return None
