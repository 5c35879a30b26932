"""Consistent histories and journals made by hand, to test the checker on.

A workload is, per conversation, the fate of each message in the order a client sent them
(``Fate``). :func:`build` writes the journal the service should have kept and the history
its client should have recorded; the checker must find nothing wrong in them. Each test of
``test_checker.py`` then breaks one thing and expects the checker to name it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import msgspec

from tests.cluster._checker import Entry
from tests.cluster._history import History, Op, ReplySeen

__all__ = ["Built", "Fate", "build"]


class Fate(Enum):
    """What happened to one message."""

    COMPLETED = "completed"  # acknowledged with its reply
    HANDED_OFF = "handed_off"  # acknowledged; the reply came from another agent, new epoch
    APPROVAL = "approval"  # acknowledged as waiting for a person, who then approved
    UNKNOWN_APPLIED = "unknown_applied"  # the client timed out; the service did it
    UNKNOWN_DROPPED = "unknown_dropped"  # the client timed out; the service never had it
    REFUSED = "refused"  # a 4xx: never accepted


class Built(msgspec.Struct, kw_only=True):
    history: History
    journals: dict[str, list[Entry]]


def build(workload: list[list[Fate]], *, node: str = "n1") -> Built:
    """The journal and the history of ``workload``, all written by ``node``."""
    history = History()
    journals: dict[str, list[Entry]] = {}
    clock = 0.0
    for index, fates in enumerate(workload):
        cid = f"c{index}"
        journal = _Journal(node)
        add = journal.add
        for number, fate in enumerate(fates):
            mid = f"{cid}-m{number}"
            text = f"message {number} of {cid}"
            clock += 1.0
            invoke = Op(
                process=index,
                type="invoke",
                f="send",
                conversation_id=cid,
                time=clock,
                message_id=mid,
                text=text,
            )
            history.ops.append(invoke)
            clock += 1.0
            if fate in (Fate.REFUSED, Fate.UNKNOWN_DROPPED):
                kind = "fail" if fate is Fate.REFUSED else "unknown"
                history.ops.append(
                    msgspec.structs.replace(invoke, type=kind, time=clock, error="refused")
                )
                continue
            add("accepted", message_id=mid, text=text, started=True)
            agent = "triage"
            if fate is Fate.HANDED_OFF:
                journal.epoch += 1
                add("handed_off")
                add("baton_accepted")
                agent = "billing"
            reply = f"answer to {mid}"
            if fate is Fate.APPROVAL:
                approval = f"{mid}-a"
                add("approval_requested", approval_id=approval)
                history.ops.append(
                    msgspec.structs.replace(
                        invoke,
                        type="ok",
                        time=clock,
                        status="awaiting_approval",
                        approval_ids=(approval,),
                    )
                )
                decide = Op(
                    process=index,
                    type="invoke",
                    f="decide",
                    conversation_id=cid,
                    time=clock + 0.5,
                    approval_id=approval,
                    decision="approve",
                )
                history.ops.append(decide)
                add("approval_decided", approval_id=approval, decision="approve")
                history.ops.append(
                    msgspec.structs.replace(decide, type="ok", time=clock + 0.7, status="decided")
                )
                add("replied", agent=agent, text=reply)
                continue
            add("replied", agent=agent, text=reply)
            if fate is Fate.UNKNOWN_APPLIED:
                history.ops.append(
                    msgspec.structs.replace(invoke, type="unknown", time=clock, error="timeout")
                )
                continue
            history.ops.append(
                msgspec.structs.replace(
                    invoke,
                    type="ok",
                    time=clock,
                    status="completed",
                    replies=(ReplySeen(agent=agent, text=reply),),
                    epoch=journal.epoch,
                    node=node,
                )
            )
        if journal.records:
            journals[cid] = journal.records
    return Built(history=history, journals=journals)


class _Journal:
    """One conversation's records as :func:`build` writes them."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.epoch = 0
        self.records: list[Entry] = []

    def add(self, kind: str, **fields: Any) -> None:
        seq = len(self.records) + 1
        self.records.append(Entry(seq=seq, epoch=self.epoch, kind=kind, writer=self.node, **fields))
