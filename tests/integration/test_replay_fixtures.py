"""Recorded journals, replayed: resuming from them asks no model and runs no tool again.

The fixtures in ``journals/`` were recorded from real runs of ``crash_flow/flow.toml``:
``refund_finished`` ran to its end; ``refund_before_reply`` was killed at the
``before_reply`` failpoint, after the refund agent's final answer was recorded but before
its reply was. Both are replayed into a store under a runtime whose models and tools fail
the test if called: everything the conversation needs is in the journal.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from relaybaton import Agent, ToolContext, handoff, open_runtime
from relaybaton.actors import FunctionTool
from relaybaton.adapters import ChatMessage, ModelRequest
from relaybaton.runtime._journal_events import JournalRecord
from relaybaton.runtime._store import EncodedRecord, Head, MemoryStore, WriteBatch
from relaybaton.testing import ScriptedModel

pytestmark = pytest.mark.anyio

JOURNALS = Path(__file__).parent / "journals"
decode = msgspec.json.Decoder(JournalRecord[ChatMessage]).decode


def _never(request: ModelRequest) -> object:
    raise AssertionError(f"replay asked a model: {request.metadata.agent}")


def _refund_never(order_id: str, amount: float, context: ToolContext) -> str:
    """Issue a refund of an amount of money for an order."""
    raise AssertionError(f"replay ran the refund tool again ({context.idempotency_key})")


def _agents() -> Agent:
    policy = Agent(name="policy", model="general")
    refund = Agent(
        name="refund",
        model="general",
        tools=(
            FunctionTool(_refund_never, name="issue_refund", needs_approval="amount > 100"),
            policy.as_tool("check_refund_policy"),
        ),
    )
    return Agent(name="triage", model="general", handoffs=(handoff(refund, return_to_sender=True),))


async def _store_with(fixture: str) -> MemoryStore:
    store = MemoryStore()
    bodies = (JOURNALS / fixture).read_bytes().splitlines()
    records = [decode(body) for body in bodies]
    last = records[-1]
    finished = any(type(r.event).__name__ == "Replied" for r in records)
    await store.write(
        WriteBatch(
            records=[
                EncodedRecord(
                    conversation_id=r.conversation_id,
                    seq=r.seq,
                    epoch=r.epoch,
                    kind=str(type(r.event).__struct_config__.tag),
                    body=body,
                )
                for r, body in zip(records, bodies, strict=True)
            ],
            heads={
                last.conversation_id: Head(
                    conversation_id=last.conversation_id,
                    seq=last.seq,
                    epoch=last.epoch,
                    owner=None,
                    status="active",
                    unfinished=not finished,
                    updated_at=0.0,
                )
            },
        )
    )
    return store


@pytest.mark.parametrize("fixture", ["refund_finished.jsonl", "refund_before_reply.jsonl"])
async def test_resuming_a_recorded_journal_makes_no_model_or_tool_call(fixture: str) -> None:
    store = await _store_with(fixture)
    model = ScriptedModel(_never)
    async with open_runtime(_agents(), models={"general": model}, store=store) as runtime:
        await runtime.settle()
        conversation = await runtime.conversations.load("c1")
        assert conversation is not None
        assert not conversation.unfinished
        [turn] = conversation.seen.values()
        assert turn.result is not None
        assert turn.result.replies[0].agent == "refund"
        assert "refunded $40.00 on order AB-1234" in turn.result.text
        assert conversation.owner == "triage"  # the lease brought the baton back
    assert model.requests == []
