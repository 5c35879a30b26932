"""Durable execution on a store: resume without repeating work, approvals, sync durability."""

from __future__ import annotations

import asyncio
import json

import anyio
import msgspec
import pytest

from relaybaton import Agent, ToolContext, handoff, open_runtime
from relaybaton.actors import FunctionTool
from relaybaton.adapters import ModelRequest, ToolResultMessage, UserMessage
from relaybaton.errors import ApprovalError
from relaybaton.runtime import ConversationStatus, Durability
from relaybaton.runtime._store import EncodedRecord, MemoryStore, WriteBatch
from relaybaton.testing import FakeClock, ScriptedModel, tool_call

pytestmark = pytest.mark.anyio


class Ledger:
    """Side effects of the refund tool, keyed by idempotency key (as a real tool would)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    def tool(self, rule: str | bool = "amount > 100", timeout: float | None = None) -> FunctionTool:
        ledger = self

        async def issue_refund(order_id: str, amount: float, context: ToolContext) -> str:
            """Refund an order."""
            ledger.entered.set()
            if ledger.gate is not None:
                await ledger.gate.wait()
            ledger.calls.append((context.idempotency_key, amount))
            return f"refunded {amount:g} on {order_id}"

        return FunctionTool(issue_refund, needs_approval=rule, approval_timeout=timeout)


def refund_script(request: ModelRequest) -> object:
    last = request.messages[-1]
    if isinstance(last, ToolResultMessage):
        return f"done: {last.content}"
    assert isinstance(last, UserMessage)
    amount = float(last.text.split()[-1])
    return tool_call("issue_refund", f"call-{amount:g}", order_id="A1", amount=amount)


def refund_agent(ledger: Ledger, rule: str | bool = "amount > 100") -> Agent:
    return Agent(name="refund", model="m", tools=(ledger.tool(rule),))


async def test_a_refund_over_the_rule_waits_for_approval_and_runs_once_when_approved() -> None:
    ledger, model = Ledger(), ScriptedModel(refund_script)
    store = MemoryStore()
    async with open_runtime(
        refund_agent(ledger), models={"m": model}, store=store, durability="sync"
    ) as runtime:
        small = await runtime.send("c", "refund 40")
        assert small.text == "done: refunded 40 on A1"
        pending = runtime.submit("c", "refund 150")
        await runtime.settle()
        conversation = runtime.conversation("c")
        assert conversation is not None
        assert conversation.status is ConversationStatus.AWAITING_APPROVAL
        [request] = runtime.approvals()
        assert (request.tool, json.loads(request.arguments)) == (
            "issue_refund",
            {"order_id": "A1", "amount": 150},
        )
        assert not pending.done()
        assert [a for _, a in ledger.calls] == [40]
        runtime.decide(request.approval_id, "approve", arguments_hash=request.arguments_hash)
        result = await pending
        assert result.text == "done: refunded 150 on A1"
        # The same decision again is a no-op; another one is refused.
        runtime.decide(request.approval_id, "approve", arguments_hash=request.arguments_hash)
        with pytest.raises(ApprovalError, match="decided already \\(approve\\)"):
            runtime.decide(request.approval_id, "reject", arguments_hash=request.arguments_hash)
    assert [a for _, a in ledger.calls] == [40, 150]
    assert len(model.requests) == 4  # nothing was asked twice


async def test_a_rejection_reaches_the_model_as_the_tool_result_and_nothing_runs() -> None:
    ledger, model = Ledger(), ScriptedModel(refund_script)
    async with open_runtime(refund_agent(ledger), models={"m": model}, store=MemoryStore()) as rt:
        pending = rt.submit("c", "refund 500")
        await rt.settle()
        [request] = rt.approvals()
        rt.decide(
            request.approval_id,
            "reject",
            arguments_hash=request.arguments_hash,
            note="over the limit",
        )
        result = await pending
    assert ledger.calls == []
    assert result.text == "done: a person rejected this call: over the limit; do not retry it as is"


async def test_an_edit_that_still_matches_the_rule_needs_its_own_approval() -> None:
    ledger, model = Ledger(), ScriptedModel(refund_script)
    async with open_runtime(refund_agent(ledger), models={"m": model}, store=MemoryStore()) as rt:
        pending = rt.submit("c", "refund 500")
        await rt.settle()
        [first] = rt.approvals()
        rt.decide(
            first.approval_id,
            "edit",
            arguments_hash=first.arguments_hash,
            arguments='{"order_id": "A1", "amount": 120}',
        )
        await rt.settle()
        [second] = rt.approvals()
        assert second.approval_id != first.approval_id
        assert json.loads(second.arguments)["amount"] == 120
        rt.decide(
            second.approval_id,
            "edit",
            arguments_hash=second.arguments_hash,
            arguments='{"order_id": "A1", "amount": 90}',
        )
        result = await pending
    assert [a for _, a in ledger.calls] == [90]
    assert result.text == "done: refunded 90 on A1"


async def test_decisions_for_unknown_or_changed_requests_are_refused_with_a_reason() -> None:
    ledger, model = Ledger(), ScriptedModel(refund_script)
    async with open_runtime(refund_agent(ledger), models={"m": model}, store=MemoryStore()) as rt:
        rt.submit("c", "refund 500")
        await rt.settle()
        [request] = rt.approvals()
        with pytest.raises(ApprovalError, match="no approval request 'ap-nope'"):
            rt.decide("ap-nope", "approve", arguments_hash=request.arguments_hash)
        with pytest.raises(ApprovalError, match=r"is for arguments with hash .* not 0000"):
            rt.decide(request.approval_id, "approve", arguments_hash="0000")
        with pytest.raises(ApprovalError, match="an edit needs the new arguments"):
            rt.decide(request.approval_id, "edit", arguments_hash=request.arguments_hash)
        assert rt.approvals() == [request]


async def test_an_undecided_request_expires_into_a_rejection() -> None:
    ledger, model = Ledger(), ScriptedModel(refund_script)
    clock = FakeClock()
    agent = Agent(name="refund", model="m", tools=(ledger.tool(timeout=60.0),))
    async with open_runtime(agent, models={"m": model}, store=MemoryStore(), clock=clock) as rt:
        wall = [1_000.0]
        rt.conversations.wall = lambda: wall[0]
        pending = rt.submit("c", "refund 500")
        await rt.settle()
        [request] = rt.approvals()
        assert request.expires_at == 1_060.0
        wall[0] = 1_061.0
        await clock.advance(61.0)
        result = await pending
    assert ledger.calls == []
    assert "no decision came within the approval timeout" in result.text


async def test_a_restart_finishes_a_paused_turn_without_asking_the_model_again() -> None:
    store = MemoryStore()
    ledger, first_model = Ledger(), ScriptedModel(refund_script)
    async with open_runtime(
        refund_agent(ledger), models={"m": first_model}, store=store, durability="sync"
    ) as rt:
        rt.submit("c", "refund 150")
        await rt.settle()
        [request] = rt.approvals()
    # A new process: the decision arrives while nothing runs, then the runtime restarts.
    second_model = ScriptedModel(refund_script)
    async with open_runtime(
        refund_agent(ledger), models={"m": second_model}, store=store, durability="sync"
    ) as rt:
        assert [a.approval_id for a in rt.approvals()] == [request.approval_id]
        rt.decide(request.approval_id, "approve", arguments_hash=request.arguments_hash)
        await rt.settle()
        conversation = rt.conversation("c")
        assert conversation is not None
        [turn] = conversation.seen.values()
        assert turn.result is not None
        assert turn.result.text == "done: refunded 150 on A1"
    assert len(first_model.requests) == 1  # it asked for the tool call
    assert len(second_model.requests) == 1  # only for the answer after the tool: no repeat
    assert [a for _, a in ledger.calls] == [150]


async def test_a_tool_interrupted_by_a_stop_runs_again_with_the_same_idempotency_key() -> None:
    store = MemoryStore()
    ledger = Ledger()
    ledger.gate = asyncio.Event()  # the tool hangs: the runtime stops in the middle of it
    model = ScriptedModel(refund_script)
    with anyio.move_on_after(5):
        async with open_runtime(
            refund_agent(ledger, rule=False), models={"m": model}, store=store, durability="sync"
        ) as rt:
            rt.submit("c", "refund 30")
            await ledger.entered.wait()  # the start is recorded (sync), the effect not yet
            rt.system.root.terminate("simulated crash")
    ledger.gate = None
    async with open_runtime(
        refund_agent(ledger, rule=False), models={"m": model}, store=store, durability="sync"
    ) as rt:
        await rt.settle()
        conversation = rt.conversation("c")
        assert conversation is not None
        assert conversation.transcript[-1].text == "done: refunded 30 on A1"  # type: ignore[attr-defined]
    assert ledger.calls == [("c:call-30", 30.0)]
    assert len(model.requests) == 2  # the tool call once, the answer once


async def test_a_duplicate_message_after_a_restart_gets_the_first_result() -> None:
    store = MemoryStore()
    ledger, model = Ledger(), ScriptedModel(refund_script)
    async with open_runtime(refund_agent(ledger), models={"m": model}, store=store) as rt:
        first = await rt.send("c", "refund 20", message_id="m-1")
    async with open_runtime(refund_agent(ledger), models={"m": model}, store=store) as rt:
        again = await rt.send("c", "refund 20", message_id="m-1")
    assert again.replies == first.replies
    assert len(ledger.calls) == 1


class SlowStore(MemoryStore):
    """A store whose commits wait for a gate: shows who waits for a commit."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def write(self, batch: WriteBatch) -> None:
        await self.gate.wait()
        await super().write(batch)


async def test_in_sync_mode_the_user_hears_back_only_after_the_reply_is_committed() -> None:
    store = SlowStore()
    agent = Agent(name="a", model="m")
    async with open_runtime(
        agent, models={"m": ScriptedModel(["hello"])}, store=store, durability="sync"
    ) as rt:
        future = rt.submit("c", "hi")
        await anyio.wait_all_tasks_blocked()
        assert not future.done()
        store.gate.set()
        assert (await future).text == "hello"
        kinds = [r.kind for r in sorted(store.records["c"].values(), key=lambda r: r.seq)]
    # Accepted, started and opened in one record; then the answer, then the reply.
    assert kinds == ["accepted", "appended", "replied"]


async def test_in_batched_mode_nobody_waits_for_the_disk() -> None:
    store = SlowStore()
    agent = Agent(name="a", model="m")
    async with open_runtime(
        agent, models={"m": ScriptedModel(["hello"])}, store=store, durability="batched"
    ) as rt:
        assert (await rt.send("c", "hi")).text == "hello"
        store.gate.set()
    assert store.transactions >= 1


async def test_a_writer_with_an_older_epoch_is_refused_by_the_store() -> None:
    store = MemoryStore()
    newer = WriteBatch(
        records=[EncodedRecord(conversation_id="c", seq=1, epoch=3, kind="opened", body=b"{}")]
    )
    from relaybaton.runtime._store import Head

    newer.heads["c"] = Head(
        conversation_id="c", seq=1, epoch=3, owner="a", status="active", unfinished=False,
        updated_at=0.0,
    )  # fmt: skip
    await store.write(newer)
    older = WriteBatch(heads={"c": msgspec.structs.replace(newer.heads["c"], epoch=2, seq=2)})
    from relaybaton.errors import StaleEpochError

    with pytest.raises(StaleEpochError, match="epoch 2 is stale, current is 3"):
        await store.write(older)


async def test_handoffs_and_leases_survive_a_reload_exactly() -> None:
    store = MemoryStore()
    expert = Agent(name="expert", model="m")
    triage = Agent(name="triage", model="m", handoffs=(handoff(expert, return_to_sender=True),))

    def script(request: ModelRequest) -> object:
        if request.metadata.agent == "triage" and isinstance(request.messages[-1], UserMessage):
            return tool_call("transfer_to_expert", f"h{len(request.messages)}")
        return f"{request.metadata.agent} answers"

    async with open_runtime(
        triage, models={"m": ScriptedModel(script)}, store=store, durability=Durability.SYNC
    ) as rt:
        await rt.send("c", "one")
        await rt.send("c", "two")
        live = rt.conversation("c")
        assert live is not None
        snapshot = (live.owner, live.epoch, list(live.ownership), list(live.transcript))
    async with open_runtime(triage, models={"m": ScriptedModel(script)}, store=store) as rt:
        loaded = await rt.conversations.load("c")
        assert loaded is not None
        assert (loaded.owner, loaded.epoch, loaded.ownership, loaded.transcript) == (
            snapshot[0],
            snapshot[1],
            snapshot[2],
            snapshot[3],
        )
        assert loaded.owner == "triage"  # the lease brought the baton back
