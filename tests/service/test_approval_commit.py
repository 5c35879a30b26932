"""A decision is answered only once its journal record is committed (sync durability).

Found by the cluster fault tests' history checker: a node SIGKILLed right after it answered
a decision "decided" had not written it yet, so the acknowledged decision was lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relaybaton import open_runtime
from relaybaton.runtime._store import MemoryStore, WriteBatch
from relaybaton.service._approval_desk import RuntimeApprovals
from relaybaton.testing import ScriptedModel
from tests.actors.test_durable import Ledger, refund_agent, refund_script

pytestmark = pytest.mark.anyio


class GatedStore:
    """A memory store whose writes wait for ``gate`` while ``hold`` is set."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.hold = False
        self.gate = asyncio.Event()
        self.parked = asyncio.Event()  # a write is waiting at the gate

    async def write(self, batch: WriteBatch) -> None:
        if self.hold:
            self.parked.set()
            await self.gate.wait()
        await self.inner.write(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # reads go straight to the memory store


async def test_the_answer_to_a_decision_waits_for_its_commit() -> None:
    store, ledger = GatedStore(), Ledger()
    async with open_runtime(
        refund_agent(ledger), models={"m": ScriptedModel(refund_script)}, store=store,
        durability="sync",
    ) as runtime:  # fmt: skip
        pending = runtime.submit("c", "refund 150")
        await runtime.settle()
        [request] = runtime.approvals()
        store.hold = True
        try:
            deciding = asyncio.ensure_future(
                RuntimeApprovals(runtime).decide(
                    request.approval_id, "approve", arguments=None, reason=""
                )
            )
            await asyncio.wait_for(store.parked.wait(), timeout=5)
            assert not deciding.done(), "answered before the decision was on disk"
            assert not any(row.decision for row in store.inner.approval_rows.values())
        finally:
            store.hold = False
            store.gate.set()
        outcome = await deciding
        assert outcome["status"] == "decided"
        assert [row.decision for row in store.inner.approval_rows.values()] == ["approve"]
        await pending
