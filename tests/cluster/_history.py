"""A client-side history of operations, in the manner of Jepsen, and its JSON form.

Each operation a client performs is two entries: an ``invoke`` when it starts and one
completion when it ends: ``ok`` (the service acknowledged it), ``fail`` (the service
definitely did not do it: a 4xx refusal before acceptance) or ``unknown`` (a timeout, a
reset connection, a 5xx: it may or may not have happened). The checker
(``_checker.py``) holds the history against the journals the store kept.

Times are ``time.monotonic()`` seconds: they order a client's operations, never compare
machines.
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec

__all__ = [
    "Completion",
    "History",
    "HistoryRecorder",
    "Op",
    "ReplySeen",
    "longest_wait",
]

Kind = Literal["invoke", "ok", "fail", "unknown"]
Function = Literal["send", "decide"]


class ReplySeen(msgspec.Struct, frozen=True, kw_only=True):
    """One reply text a client read in an answer."""

    agent: str
    text: str


class Op(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the history.

    ``f`` is ``send`` (a user message: ``conversation_id``, ``message_id``, ``text``) or
    ``decide`` (an approval decision: ``approval_id``, ``decision``). A completion carries
    what the answer said: ``status`` (``completed``, ``awaiting_approval``, ``accepted``,
    ``decided``), the ``replies`` read, the conversation ``epoch`` the answer named and the
    ``node`` that answered, when the answer says so.
    """

    process: int
    type: Kind
    f: Function
    conversation_id: str
    time: float
    message_id: str = ""
    text: str = ""
    approval_id: str = ""
    decision: str = ""
    status: str = ""
    replies: tuple[ReplySeen, ...] = ()
    approval_ids: tuple[str, ...] = ()
    epoch: int | None = None
    node: str = ""
    error: str = ""


class History(msgspec.Struct, kw_only=True):
    """Every entry, in the order the clients recorded them."""

    ops: list[Op] = msgspec.field(default_factory=list)

    def completed(self) -> list[tuple[Op, Op]]:
        """Each invoke with its completion (an invoke never completed counts as unknown)."""
        open_by_process: dict[int, Op] = {}
        pairs: list[tuple[Op, Op]] = []
        for op in self.ops:
            if op.type == "invoke":
                open_by_process[op.process] = op
                continue
            invoke = open_by_process.pop(op.process, None)
            if invoke is None:
                raise ValueError(f"process {op.process} completed {op.f} it never invoked: {op}")
            pairs.append((invoke, op))
        for invoke in open_by_process.values():
            pairs.append((invoke, msgspec.structs.replace(invoke, type="unknown")))
        return pairs


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    """What a client learnt from an answer, to be recorded as ``ok``/``fail``/``unknown``."""

    type: Kind
    status: str = ""
    replies: tuple[ReplySeen, ...] = ()
    approval_ids: tuple[str, ...] = ()
    epoch: int | None = None
    node: str = ""
    error: str = ""


class HistoryRecorder:
    """Appends entries from many client tasks on one event loop (no lock needed)."""

    def __init__(self) -> None:
        self.history = History()

    def invoke(self, process: int, op: Op) -> Op:
        entry = msgspec.structs.replace(op, process=process, type="invoke", time=time.monotonic())
        self.history.ops.append(entry)
        return entry

    def complete(self, invoke: Op, completion: Completion) -> Op:
        entry = msgspec.structs.replace(
            invoke,
            type=completion.type,
            time=time.monotonic(),
            status=completion.status,
            replies=completion.replies,
            approval_ids=completion.approval_ids,
            epoch=completion.epoch,
            node=completion.node,
            error=completion.error,
        )
        self.history.ops.append(entry)
        return entry


def longest_wait(history: History, began: float, ended: float) -> float:
    """The longest time from a message's first send to its answer, for messages sent
    during [began, ended] (a message left unanswered counts until the end)."""
    first: dict[str, float] = {}
    longest = 0.0
    for op in history.ops:
        key = op.message_id
        if op.type == "invoke" and op.f == "send":
            first.setdefault(key, op.time)
        elif op.type == "ok" and op.f == "send" and key in first:
            sent = first.pop(key)
            if sent >= began:
                longest = max(longest, op.time - sent)
    for sent in first.values():
        if began <= sent <= ended:
            longest = max(longest, ended - sent)
    return longest
