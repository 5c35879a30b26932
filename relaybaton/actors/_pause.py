"""A turn that waits for a person answers at once: ``wait_for_turn`` and ``Paused``.

A turn paused for an approval may wait days. Whoever waits on it (the command line, the
HTTP edge) should not: ``wait_for_turn`` returns the turn's result, or, as soon as the
conversation is parked for a person's decision, a ``Paused`` that says so in words a
customer reads, with the conversation id and the approval ids. The turn itself goes on
when the decision comes; its reply is journaled and published as every reply is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from relaybaton.runtime import ApprovalRequested, Conversations, TurnResult

__all__ = ["Paused", "wait_for_turn", "waiting_reply"]


class Paused(msgspec.Struct, frozen=True, kw_only=True):
    """A turn waiting for a person: ``text`` says so; ``approval_ids`` name the requests."""

    conversation_id: str
    approval_ids: tuple[str, ...]
    text: str


def waiting_reply(conversation_id: str, requests: Sequence[ApprovalRequested]) -> str:
    """What the user reads while their request waits for a person."""
    ids = ", ".join(r.approval_id for r in requests) or "pending"
    doing = ", ".join(dict.fromkeys(_doing(r.tool) for r in requests)) or "go on"
    return (
        f"Your request is waiting for review by a person before I can {doing} "
        f"(conversation {conversation_id}, approval {ids}). "
        "I'll continue as soon as they decide."
    )


def _doing(tool: str) -> str:
    verb, _, rest = tool.replace("_", " ").partition(" ")
    return f"{verb} the {rest}" if rest else verb


async def wait_for_turn(
    conversations: Conversations, conversation_id: str, future: asyncio.Future[TurnResult]
) -> TurnResult | Paused:
    """The turn's result, or ``Paused`` once its conversation waits for a person.

    Cancelling the wait leaves the turn running (``future`` is the caller's own waiter).
    """
    if future.done():
        return future.result()
    changed = asyncio.Event()
    unsubscribe = conversations.watch(conversation_id, changed.set)
    future.add_done_callback(lambda _: changed.set())
    try:
        while not future.done():
            conversation = conversations.get(conversation_id)
            if conversation is not None and conversation.waiting_for_a_person:
                requests = conversation.pending_approvals
                return Paused(
                    conversation_id=conversation_id,
                    approval_ids=tuple(r.approval_id for r in requests),
                    text=waiting_reply(conversation_id, requests),
                )
            changed.clear()
            await changed.wait()
    finally:
        unsubscribe()
    return future.result()
