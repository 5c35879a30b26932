"""The history checker: what the clients were told, held against what the journal kept.

It works on plain data, a :class:`~tests.cluster._history.History` and, per conversation,
its journal as a list of :class:`Entry` (``_journal_view.py`` reads them from a store), so
hand-made histories test it (``test_checker.py``: each breaks one property and must be
caught). The properties, each a ``Violation.property``:

- ``lost``: an acknowledged message (``ok``) is not in its conversation's journal, or a
  message answered as completed has no reply or error there;
- ``duplicated``: a message (acknowledged or not) was accepted, started or finished more
  than once, or a decision journaled twice;
- ``altered``: the journal holds another text than the acknowledged one;
- ``failed-applied``: a message refused for certain (``fail``, every time it was sent) is
  in the journal anyway;
- ``order``: a conversation's acknowledged messages (sent one after the other) were
  accepted in another order;
- ``epoch-regressed``: an epoch fell along a journal;
- ``seq-gap``: a journal's sequence numbers skip or repeat (a record lost or overwritten);
- ``two-writers``: two nodes journaled for one conversation under one lease generation
  (or, outside a cluster, under one epoch);
- ``generation-regressed``: a record was written under an older lease generation than a
  record before it (a deposed node's late write got in);
- ``phantom-reply``: a client read a reply (or an approval id) the journal does not hold
  for that message, or under another epoch than the journal's;
- ``reply-from-other-node``: the node that answered is not the node that journaled it;
- ``decision-lost`` / ``decision-overwritten``: an acknowledged approval decision is not in
  the journal, or the journal holds another one.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from tests.cluster._history import History, Op

__all__ = ["Case", "Entry", "FinishedTurn", "Violation", "check", "load_case", "save_case"]


class FinishedTurn(msgspec.Struct, frozen=True, kw_only=True):
    """A turn a snapshot covers: the records before it may be pruned."""

    message_id: str
    replies: tuple[tuple[str, str], ...] = ()
    error: str | None = None


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One journal record, reduced to what the checker reads.

        ``kind`` is the record's tag (``accepted``, ``turn_started``, ``replied``,
        ``turn_failed``, ``approval_requested``, ``approval_decided``, ``snapshot``; any other
        tag is only sequenced). ``text`` is the user's text (accepted), the reply (replied) or
        the error (turn_failed). ``writer`` is the node that wrote it and ``generation`` the lease
    generation it wrote under, when the journal says (cluster mode).
        A snapshot lists the turns it finished (``finished``) and those still open (``open``).
    """

    seq: int
    epoch: int
    kind: str
    message_id: str = ""
    text: str = ""
    agent: str = ""
    started: bool = False
    approval_id: str = ""
    decision: str = ""
    writer: str = ""
    generation: int | None = None
    finished: tuple[FinishedTurn, ...] = ()
    open: tuple[str, ...] = ()


class Violation(msgspec.Struct, frozen=True, kw_only=True, order=True):
    property: str
    conversation_id: str
    detail: str

    def __str__(self) -> str:
        return f"{self.property} [{self.conversation_id}]: {self.detail}"


class _Turn:
    """What one conversation's journal says about one message."""

    __slots__ = ("accepted", "epochs", "position", "replies", "started", "terminal", "text")

    def __init__(self, position: int, text: str) -> None:
        self.position = position
        self.text = text
        self.accepted = 1
        self.started = 0
        self.terminal = 0
        # (agent, text, epoch, writer) of each reply; an error is a reply with agent "!".
        self.replies: list[tuple[str, str, int | None, str]] = []
        self.epochs: set[int] = set()


class _Fold:
    """One pass over a conversation's journal."""

    def __init__(self, conversation_id: str, out: list[Violation]) -> None:
        self.cid = conversation_id
        self.out = out
        self.turns: dict[str, _Turn] = {}
        self.inbox: list[str] = []
        self.active: str | None = None
        self.requested: dict[str, str] = {}  # approval id -> the message whose turn asked
        self.decisions: dict[str, list[str]] = defaultdict(list)
        self.writers: dict[tuple[str, int], set[str]] = defaultdict(set)
        self.positions = 0

    def flag(self, prop: str, detail: str) -> None:
        self.out.append(Violation(property=prop, conversation_id=self.cid, detail=detail))

    def run(self, entries: Sequence[Entry]) -> None:
        previous: Entry | None = None
        newest: int | None = None
        for entry in entries:
            if previous is not None:
                if entry.epoch < previous.epoch:
                    self.flag(
                        "epoch-regressed",
                        f"seq {entry.seq} has epoch {entry.epoch} after epoch"
                        f" {previous.epoch} at seq {previous.seq}",
                    )
                if entry.seq != previous.seq + 1:
                    self.flag("seq-gap", f"seq {previous.seq} is followed by seq {entry.seq}")
            elif entry.seq != 1 and entry.kind != "snapshot":
                self.flag("seq-gap", f"the journal starts at seq {entry.seq}, not 1")
            if entry.writer:
                # In a cluster the lease generation is the fencing token (a takeover does
                # not change a conversation's epoch); outside one, the epoch is.
                key = (
                    ("lease generation", entry.generation)
                    if entry.generation is not None
                    else ("epoch", entry.epoch)
                )
                self.writers[key].add(entry.writer)
            if entry.generation is not None:
                if newest is not None and entry.generation < newest:
                    self.flag(
                        "generation-regressed",
                        f"seq {entry.seq} was written under lease generation"
                        f" {entry.generation} after generation {newest}",
                    )
                newest = max(newest or 0, entry.generation)
            self.apply(entry)
            previous = entry
        for (name, value), writers in sorted(self.writers.items()):
            if len(writers) > 1:
                self.flag("two-writers", f"{name} {value} was written by {sorted(writers)}")

    def apply(self, entry: Entry) -> None:
        kind = entry.kind
        if kind == "accepted":
            self.accept(entry)
        elif kind == "turn_started":
            self.start(entry.message_id, entry.seq)
        elif kind in ("replied", "turn_failed"):
            self.finish(entry)
        elif kind == "approval_requested":
            self.requested[entry.approval_id] = self.active or ""
        elif kind == "approval_decided":
            self.decisions[entry.approval_id].append(entry.decision)
        elif kind == "snapshot":
            self.restore(entry)

    def accept(self, entry: Entry) -> None:
        mid = entry.message_id
        turn = self.turns.get(mid)
        if turn is not None:
            turn.accepted += 1
            self.flag("duplicated", f"message {mid} accepted again at seq {entry.seq}")
            return
        self.positions += 1
        self.turns[mid] = _Turn(self.positions, entry.text)
        if entry.started:
            self.start(mid, entry.seq)
        else:
            self.inbox.append(mid)

    def start(self, mid: str, seq: int) -> None:
        turn = self.turns.get(mid)
        if turn is None:
            self.flag("lost", f"message {mid} started at seq {seq} but was never accepted")
            return
        turn.started += 1
        if turn.started > 1:
            self.flag("duplicated", f"message {mid} started again at seq {seq}")
        if mid in self.inbox:
            self.inbox.remove(mid)
        self.active = mid

    def finish(self, entry: Entry) -> None:
        mid = self.active
        if mid is None:
            self.flag("duplicated", f"a {entry.kind} at seq {entry.seq} ends no turn")
            return
        turn = self.turns[mid]
        turn.terminal += 1
        agent = entry.agent if entry.kind == "replied" else "!"
        turn.replies.append((agent, entry.text, entry.epoch, entry.writer))
        if turn.terminal > 1:
            self.flag("duplicated", f"message {mid} finished again at seq {entry.seq}")
        self.active = None

    def restore(self, entry: Entry) -> None:
        # Records before a snapshot may be pruned: what it says replaces what was folded.
        self.turns = {}
        self.positions = 0
        for done in entry.finished:
            self.positions += 1
            turn = self.turns[done.message_id] = _Turn(self.positions, "")
            turn.started = turn.terminal = 1
            turn.replies = [(a, t, None, "") for a, t in done.replies]
            if done.error is not None:
                turn.replies.append(("!", done.error, None, ""))
        self.inbox = []
        for mid in entry.open:
            self.positions += 1
            self.turns[mid] = _Turn(self.positions, "")
            self.inbox.append(mid)
        self.active = None


def check(history: History, journals: Mapping[str, Sequence[Entry]]) -> list[Violation]:
    """Every property the history and the journals break (empty: none)."""
    out: list[Violation] = []
    folds: dict[str, _Fold] = {}
    for cid, entries in journals.items():
        fold = folds[cid] = _Fold(cid, out)
        fold.run(entries)
    empty = _Fold("", [])
    sends: dict[str, list[tuple[Op, Op]]] = defaultdict(list)
    # A client sends a message again (same id) when it could not tell whether it arrived.
    outcomes: dict[tuple[str, str], set[str]] = defaultdict(set)
    pairs = history.completed()
    for invoke, done in pairs:
        outcomes[invoke.conversation_id, invoke.message_id].add(done.type)
    for invoke, done in pairs:
        fold = folds.get(invoke.conversation_id, empty)
        fold.cid = invoke.conversation_id
        fold.out = out
        if invoke.f == "send":
            if done.type != "fail" or outcomes[invoke.conversation_id, invoke.message_id] == {
                "fail"
            }:
                _check_send(fold, invoke, done)
            sends[invoke.conversation_id].append((invoke, done))
        else:
            _check_decision(fold, invoke, done)
    for cid, pairs in sends.items():
        _check_order(folds.get(cid), cid, pairs, out)
    return sorted(set(out))


def _check_send(fold: _Fold, invoke: Op, done: Op) -> None:
    mid = invoke.message_id
    turn = fold.turns.get(mid)
    if done.type == "fail":
        if turn is not None:
            fold.flag("failed-applied", f"message {mid} was refused ({done.error}) yet journaled")
        return
    if done.type == "unknown":
        return  # at most once: a duplicate is flagged by the fold whatever the outcome
    if turn is None:
        fold.flag("lost", f"message {mid} was acknowledged ({done.status}) but never journaled")
        return
    if turn.text and invoke.text and turn.text != invoke.text:
        fold.flag("altered", f"message {mid} was sent as {invoke.text!r}, kept as {turn.text!r}")
    if done.status == "completed":
        _check_replies(fold, mid, turn, done)
    for approval_id in done.approval_ids:
        # A message queued behind a turn that waits for a person is answered with that
        # turn's approval: it must be this message's turn or one accepted before it.
        asker = fold.turns.get(fold.requested.get(approval_id, ""))
        if asker is None or asker.position > turn.position:
            fold.flag(
                "phantom-reply",
                f"message {mid} was answered with approval {approval_id}, which the journal"
                " does not hold for it or a message before it",
            )


def _check_replies(fold: _Fold, mid: str, turn: _Turn, done: Op) -> None:
    if not turn.terminal:
        fold.flag("lost", f"message {mid} was answered as completed; the journal never ended it")
        return
    journaled = {(agent, text) for agent, text, _, _ in turn.replies}
    for seen in done.replies:
        if (seen.agent, seen.text) not in journaled and ("!", seen.text) not in journaled:
            fold.flag(
                "phantom-reply",
                f"message {mid} was answered {seen.agent}: {seen.text[:60]!r}, which the"
                " journal does not hold",
            )
    _, _, last_epoch, writer = turn.replies[-1]
    if done.epoch is not None and last_epoch is not None and done.epoch != last_epoch:
        fold.flag(
            "phantom-reply",
            f"message {mid} was answered under epoch {done.epoch}; the journal ended it"
            f" under epoch {last_epoch}",
        )
    if done.node and writer and done.node != writer:
        fold.flag(
            "reply-from-other-node",
            f"message {mid} was answered by {done.node}; {writer} journaled its end",
        )


def _check_decision(fold: _Fold, invoke: Op, done: Op) -> None:
    aid = invoke.approval_id
    decided = fold.decisions.get(aid, [])
    if len(decided) > 1:
        fold.flag("duplicated", f"approval {aid} was decided {len(decided)} times: {decided}")
    if done.type == "fail":
        return  # refused (already decided, stale): the journal may hold another decision
    if done.type == "ok":
        if not decided:
            fold.flag("decision-lost", f"approval {aid} was decided {invoke.decision}; not kept")
        elif decided[0] != invoke.decision:
            fold.flag(
                "decision-overwritten",
                f"approval {aid} was decided {invoke.decision}; the journal holds {decided[0]}",
            )


def _check_order(
    fold: _Fold | None, cid: str, pairs: list[tuple[Op, Op]], out: list[Violation]
) -> None:
    if fold is None:
        return
    acknowledged = sorted(
        (invoke.time, invoke.message_id) for invoke, done in pairs if done.type == "ok"
    )
    positions = [(fold.turns[mid].position, mid) for _, mid in acknowledged if mid in fold.turns]
    for (before, first), (after, second) in itertools.pairwise(positions):
        if after < before:
            out.append(
                Violation(
                    property="order",
                    conversation_id=cid,
                    detail=f"message {second} was sent after {first} but accepted before it",
                )
            )


class Case(msgspec.Struct, kw_only=True):
    """A history with the journals it was checked against: kept when a check fails.

    ``violations`` are what the checker said then; the regression test checks that it says
    so still, and (with the services up) that the scenario run again with ``seed`` passes.
    """

    seed: int
    scenario: str
    history: History
    journals: dict[str, list[Entry]]
    violations: list[str]


def save_case(path: Path, case: Case) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(case), indent=1))
    return path


def load_case(path: Path) -> Case:
    return msgspec.json.decode(path.read_bytes(), type=Case)
