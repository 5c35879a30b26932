"""A dataset built from stored conversations, so yesterday's traffic can be run again.

Each conversation of a journal store becomes one item: its user messages in order are the
item's turns, and what the flow answered then is kept as the expected value ``reply`` (a
similarity grader with ``expected = "reply"`` then measures how far a new version drifts
from the old answers). Conversations are chosen by the time of their last record, by an
agent that held them, and by status.
"""

from __future__ import annotations

from collections.abc import Sequence

from relaybaton.adapters import AssistantMessage, ChatMessage, UserMessage
from relaybaton.errors import ConfigError
from relaybaton.evals._dataset import EvalItem
from relaybaton.runtime import Journal, MonotonicClock, Store

__all__ = ["dataset_from_store"]

STATUSES = ("active", "awaiting_approval", "closed")


async def dataset_from_store(
    store: Store,
    *,
    since: float | None = None,
    until: float | None = None,
    agents: Sequence[str] = (),
    status: str | None = None,
    limit: int | None = None,
) -> list[EvalItem]:
    """Items from the store's conversations last written in ``[since, until)`` (epoch seconds).

    ``agents``: keep conversations one of these agents held at some point; ``status``: keep
    those in this status. Oldest first; at most ``limit``. Raises ``ConfigError`` when
    nothing matches, saying what was looked at.
    """
    if status is not None and status not in STATUSES:
        raise ConfigError(f"--status must be one of {', '.join(STATUSES)}, got {status!r}")
    journal: Journal[ChatMessage] = Journal(store, ChatMessage, clock=MonotonicClock())
    heads = sorted(await store.heads(), key=lambda h: (h.updated_at, h.conversation_id))
    items: list[EvalItem] = []
    for head in heads:
        if since is not None and head.updated_at < since:
            continue
        if until is not None and head.updated_at >= until:
            continue
        if status is not None and head.status != status:
            continue
        conversation = await journal.load(head.conversation_id, entry="")
        if conversation is None:
            continue
        holders = {r.owner for r in conversation.ownership if r.owner}
        if agents and not holders & set(agents):
            continue
        users = [m.text for m in conversation.transcript if isinstance(m, UserMessage) and m.text]
        if not users:
            continue
        replies = [
            m.text
            for m in conversation.transcript
            if isinstance(m, AssistantMessage) and m.text and not m.tool_calls
        ]
        items.append(
            EvalItem(
                id=head.conversation_id,
                messages=tuple(users),
                expected={"reply": replies[-1]} if replies else None,
                metadata={
                    "source": "store",
                    "status": head.status,
                    "owner": head.owner,
                    "agents": sorted(holders),
                    "updated_at": head.updated_at,
                },
            )
        )
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise ConfigError(
            f"no stored conversation matches (looked at {len(heads)}; filters: since={since}, "
            f"until={until}, agents={list(agents) or 'any'}, status={status or 'any'})"
        )
    return items
