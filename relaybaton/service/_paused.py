"""Turns that wait for a person, at the edge: answer the client at once, and drain past them.

A turn paused for an approval is not a turn in flight: the client gets a reply that says the
request waits for review (with the conversation and approval ids) instead of a request held
open until someone decides, and a draining server does not wait for it (the journal keeps
it; the decision continues it on whichever process has the conversation then).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from relaybaton.actors import Paused, wait_for_turn
from relaybaton.runtime import Conversations, TurnResult
from relaybaton.runtime._conversation import Reply

__all__ = ["paused_body", "paused_result", "settle"]


def paused_result(paused: Paused, message_id: str) -> TurnResult:
    """A turn result whose one reply says the request waits for review."""
    return TurnResult(
        conversation_id=paused.conversation_id,
        message_id=message_id,
        replies=(Reply(agent="", text=paused.text),),
        owner=None,
        epoch=0,
    )


def paused_body(paused: Paused, message_id: str) -> dict[str, object]:
    """The native API's answer for a paused turn."""
    return {
        "conversation_id": paused.conversation_id,
        "message_id": message_id,
        "status": "awaiting_approval",
        "approval_ids": list(paused.approval_ids),
        "replies": [{"agent": "", "text": paused.text}],
    }


async def settle(
    conversations: Conversations,
    pending: Mapping[asyncio.Future[TurnResult], str],
    timeout: float,
) -> bool:
    """Wait up to ``timeout`` until every pending turn ended or waits for a person.

    Returns whether all did.
    """
    if not pending:
        return True
    waits = [
        asyncio.ensure_future(wait_for_turn(conversations, cid, future))
        for future, cid in list(pending.items())
    ]
    try:
        _done, unsettled = await asyncio.wait(waits, timeout=timeout)
    finally:  # also when the drain itself is cancelled: no wait outlives it
        for wait in waits:
            wait.cancel()
    return not unsettled
