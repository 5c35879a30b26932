"""What a person may do to a live conversation, under the baton's rules.

Pause it before its next model or tool call and resume it; set breakpoints before a tool
or an agent; leave a note the next model call sees; take the baton (a person becomes the
owner under a new epoch), reply, and hand it to an agent; fork a new conversation from a
point in an old one's transcript. Each action names who took it, is checked against the
epoch the person saw (a stale one is a ``ConflictError`` that says what changed), applied
by a transition of ``_operator_transitions.py`` (the one replay uses), journaled, and shown
to listeners as an ``OperatorEvent``.

The owner's side: the turn loop asks ``halts_before`` at each model and tool call; the
check costs one attribute read until someone sets something on the conversation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import msgspec

from relaybaton.errors import ConflictError, OwnershipError
from relaybaton.runtime import _operator_transitions as operated
from relaybaton.runtime import _transitions as transitions
from relaybaton.runtime._conversation import Conversation, ConversationStatus, OwnershipRecord
from relaybaton.runtime._journal_events import Appended
from relaybaton.runtime._operator_events import (
    PERSON_PREFIX,
    BatonGiven,
    BatonTaken,
    BreakpointsSet,
    CheckpointPassed,
    Forked,
    Halted,
    HoldCleared,
    HoldSet,
    NoteAdded,
    NotesDelivered,
    is_person,
)
from relaybaton.runtime._turns import Turns
from relaybaton.runtime.messages import OperatorEvent

__all__ = ["Operators", "person"]


def person(name: str) -> str:
    """The owner name of the person ``name`` (``person:<name>``)."""
    return name if name.startswith(PERSON_PREFIX) else f"{PERSON_PREFIX}{name}"


def _history(conversation: Conversation, since: int) -> str:
    moves = [
        f"epoch {r.epoch}: {r.owner or 'a handoff in flight'}"
        for r in conversation.ownership
        if r.epoch > since
    ]
    return "; ".join(moves)


class Operators(Turns):
    """Pause, resume, breakpoints, notes, the person's baton and forks."""

    # --- checks -----------------------------------------------------------------------------

    def require(self, conversation_id: str) -> Conversation:
        """The conversation in memory; ``OwnershipError`` if there is none.

        A cluster node refuses (``PartitionNotOwnedError``) a conversation whose partition
        it does not hold, even one still in memory while its partition is handed over: a
        person's action is written by the owner only.
        """
        if self.admit is not None:
            self.admit(conversation_id)
        conversation = self.by_id.get(conversation_id)
        if conversation is None:
            raise OwnershipError(
                f"no conversation {conversation_id!r}", conversation_id=conversation_id
            )
        return conversation

    def _expect(self, conversation: Conversation, epoch: int | None, action: str) -> None:
        """Refuse an action taken on an older view of the conversation (fencing)."""
        if epoch is None or epoch == conversation.epoch:
            return
        changed = (
            f"it is at epoch {conversation.epoch}, owned by "
            f"{conversation.owner or 'a handoff in flight'}; you acted on epoch {epoch}"
        )
        since = _history(conversation, epoch)
        if since:
            changed += f"; the baton moved since: {since}"
        raise ConflictError(
            f"cannot {action} conversation {conversation.id!r}: {changed}. Reload it and "
            "decide again",
            conversation_id=conversation.id,
            changed=changed,
        )

    def _operated(
        self, conversation: Conversation, action: str, by: str, event: msgspec.Struct, detail: str
    ) -> None:
        if self.journal is not None:
            self.journal.record(conversation, event)
        if self.observed:
            self._emit(
                conversation,
                OperatorEvent(
                    action=action,
                    by=by,
                    epoch=conversation.epoch,
                    detail=detail,
                    at=self.system.clock.now(),
                ),
            )

    # --- pause and resume -------------------------------------------------------------------

    def pause(
        self, conversation_id: str, by: str, *, reason: str = "", epoch: int | None = None
    ) -> None:
        """Stop the conversation before its next model or tool call.

        A turn running now halts at its next call; one waiting for a decision halts at the
        first call after it; an idle conversation halts at its next turn's first call.
        """
        conversation = self.require(conversation_id)
        self._expect(conversation, epoch, "pause")
        control = conversation.control
        if control is not None and control.hold is not None:
            raise ConflictError(
                f"conversation {conversation_id!r} is paused already, by {control.hold.by}",
                conversation_id=conversation_id,
                changed=f"paused by {control.hold.by}",
            )
        event = HoldSet(by=by, reason=reason)
        operated.hold_set(conversation, event)
        self._operated(conversation, "pause", by, event, reason)

    def resume(self, conversation_id: str, by: str, *, epoch: int | None = None) -> None:
        """Let the conversation go on; a halted turn continues from where it stopped."""
        conversation = self.require(conversation_id)
        self._expect(conversation, epoch, "resume")
        control = conversation.control
        if control is None or (control.hold is None and not control.halted):
            raise ConflictError(
                f"conversation {conversation_id!r} is not paused; nothing to resume",
                conversation_id=conversation_id,
                changed="it is running (someone resumed it, or it was never paused)",
            )
        was_halted = operated.hold_cleared(conversation, by)
        self._operated(conversation, "resume", by, HoldCleared(by=by), "")
        if was_halted and conversation.parked:
            self._resume_turn(conversation)

    def set_breakpoints(
        self, conversation_id: str, by: str, breakpoints: Iterable[str], *, epoch: int | None = None
    ) -> list[str]:
        """Halt before these points from now on: ``tool:<name>`` or ``agent:<name>``."""
        conversation = self.require(conversation_id)
        self._expect(conversation, epoch, "set breakpoints on")
        points = sorted(set(breakpoints))
        for point in points:
            kind, _, name = point.partition(":")
            if kind not in {"tool", "agent"} or not name:
                raise OwnershipError(
                    f"breakpoint {point!r} is not tool:<name> or agent:<name>",
                    conversation_id=conversation_id,
                )
            if kind == "agent" and name not in self.agents:
                raise OwnershipError(
                    f"breakpoint {point!r} names no agent of this flow; its agents: "
                    f"{', '.join(sorted(self.agents))}",
                    conversation_id=conversation_id,
                )
        event = BreakpointsSet(by=by, breakpoints=points)
        operated.breakpoints_set(conversation, event)
        self._operated(conversation, "breakpoints", by, event, ", ".join(points))
        return points

    def halts_before(
        self, conversation: Conversation, agent: str, epoch: int, points: Sequence[str]
    ) -> bool:
        """For the owner: whether to stop before ``points`` (the first is where it stands).

        True: the turn halted (journaled); the owner returns and its turn is parked until
        a resume. False: go on; the notes waiting for a model call are delivered when the
        point is ``model`` or an ``agent:`` point (the model is called next).
        """
        control = conversation.control
        if control is None:
            return False
        self.check(conversation.id, agent, epoch)
        if control.released and control.released in points:
            operated.checkpoint_passed(conversation)
            if self.journal is not None:
                self.journal.record(conversation, CheckpointPassed(agent=agent, before=points[0]))
        elif control.hold is not None or any(p in control.breakpoints for p in points):
            where = (
                points[0]
                if control.hold is not None
                else next(p for p in points if p in control.breakpoints)
            )
            operated.halted(conversation, agent, where)
            self._operated(conversation, "halt", agent, Halted(agent=agent, before=where), where)
            return True
        if control.notes and not points[0].startswith("tool:"):
            operated.notes_delivered(conversation)
            if self.journal is not None:
                self.journal.record(conversation, NotesDelivered(agent=agent))
        return False

    # --- notes ------------------------------------------------------------------------------

    def add_note(
        self, conversation_id: str, by: str, item: msgspec.Struct, *, epoch: int | None = None
    ) -> None:
        """Keep ``item`` (a transcript item the agent layer made) for the next model call."""
        conversation = self.require(conversation_id)
        self._expect(conversation, epoch, "add a note to")
        if conversation.status is ConversationStatus.CLOSED:
            raise ConflictError(
                f"conversation {conversation_id!r} is closed",
                conversation_id=conversation_id,
                changed="it was closed",
            )
        operated.note_added(conversation, by, item)
        self._operated(conversation, "note", by, NoteAdded(by=by, item=item), "")

    # --- the person's baton -----------------------------------------------------------------

    def take_baton(
        self,
        conversation_id: str,
        by: str,
        *,
        epoch: int,
        closing: Callable[[Conversation], Sequence[msgspec.Struct]] | None = None,
    ) -> int:
        """Make the person ``by`` the owner under a new epoch; returns it.

        Only while no agent is working on it: idle, or its turn parked (paused, halted).
        ``closing`` gives the items the previous owner's transcript needs before it lets go
        (results for tool calls it will never run); they are appended in its name.
        """
        conversation = self.require(conversation_id)
        self._expect(conversation, epoch, "take the baton of")
        owner = conversation.owner
        if owner is None or is_person(owner):
            holder = owner or "a handoff in flight"
            raise ConflictError(
                f"cannot take the baton of conversation {conversation_id!r}: {holder} holds it",
                conversation_id=conversation_id,
                changed=f"{holder} holds the baton",
            )
        if conversation.pending_approvals:
            raise ConflictError(
                f"conversation {conversation_id!r} waits for approvals "
                f"({', '.join(a.approval_id for a in conversation.pending_approvals)}); "
                "decide them first",
                conversation_id=conversation_id,
                changed="an approval is pending",
            )
        if conversation.active is not None and not conversation.parked:
            raise ConflictError(
                f"agent {owner!r} is working on conversation {conversation_id!r}; pause it, "
                "then take the baton when it has halted",
                conversation_id=conversation_id,
                changed=f"agent {owner} is running a turn",
            )
        for item in closing(conversation) if closing is not None else ():
            transitions.appended(conversation, item, None)
            if self.journal is not None:
                self.journal.record(conversation, Appended(agent=owner, item=item))
        new_epoch = conversation.epoch + 1
        operated.baton_taken(conversation, by, new_epoch)
        conversation.parked = conversation.active is not None
        self._operated(
            conversation, "take", by, BatonTaken(by=by, previous=owner, epoch=new_epoch), owner
        )
        return new_epoch

    def give_baton(self, conversation_id: str, by: str, agent: str, *, epoch: int) -> int:
        """The person ``by`` hands the baton to ``agent`` under a new epoch; returns it.

        An unfinished turn goes to ``agent`` at once.
        """
        conversation = self.require(conversation_id)
        self._expect(conversation, epoch, "hand back")
        if conversation.owner != by:
            raise ConflictError(
                f"{by} does not hold conversation {conversation_id!r}; "
                f"{conversation.owner or 'a handoff in flight'} does",
                conversation_id=conversation_id,
                changed=f"{conversation.owner} holds the baton",
            )
        if agent not in self.agents:
            raise OwnershipError(
                f"cannot hand conversation {conversation_id!r} to {agent!r}: no such agent; "
                f"the flow's agents: {', '.join(sorted(self.agents))}",
                conversation_id=conversation_id,
            )
        new_epoch = conversation.epoch + 1
        operated.baton_given(conversation, by, agent, new_epoch)
        self._operated(
            conversation, "give", by, BatonGiven(by=by, agent=agent, epoch=new_epoch), agent
        )
        if conversation.active is not None or conversation.inbox:
            self._resume_turn(conversation)
        return new_epoch

    # --- forks ------------------------------------------------------------------------------

    def fork(
        self,
        source_id: str,
        new_id: str,
        by: str,
        *,
        upto: int,
        owner: str | None = None,
        models: Mapping[str, str] | None = None,
        instructions: Mapping[str, str] | None = None,
    ) -> Conversation:
        """Start ``new_id`` with ``source_id``'s first ``upto`` transcript items.

        The source is only read. ``owner`` (an agent; the entry agent by default) owns the
        new conversation at epoch 0; it waits for a user message like any new one.
        ``models`` and ``instructions`` (per agent) are what the fork runs with instead of
        the flow's; the agent layer checks the models can be built before this is called.
        """
        source = self.require(source_id)
        if self.admit is not None:  # the fork lives in its own partition: ours too
            self.admit(new_id)
        if new_id in self.by_id:
            raise ConflictError(
                f"conversation {new_id!r} exists already; fork to a new id",
                conversation_id=new_id,
                changed="the id is taken",
            )
        if not 0 <= upto <= len(source.transcript):
            raise OwnershipError(
                f"cannot fork {source_id!r} at item {upto}: its transcript has "
                f"{len(source.transcript)} items",
                conversation_id=source_id,
            )
        first = owner or self.entry
        if first not in self.agents:
            raise OwnershipError(
                f"cannot fork to agent {first!r}: no such agent", conversation_id=source_id
            )
        conversation = self.open(new_id, owner=first)
        for field_name, chosen in (("models", models), ("instructions", instructions)):
            unknown = sorted(set(chosen or ()) - set(self.agents))
            if unknown:
                raise OwnershipError(
                    f"{field_name}: no agent named {unknown[0]!r}; the flow's agents: "
                    f"{', '.join(sorted(self.agents))}",
                    conversation_id=source_id,
                )
        event: Forked[msgspec.Struct] = Forked(
            by=by,
            source=source_id,
            upto=upto,
            owner=first,
            items=source.transcript[:upto],
            models=dict(models or {}),
            instructions=dict(instructions or {}),
        )
        operated.forked(conversation, event)
        conversation.ownership[:] = [OwnershipRecord(owner=first, epoch=0)]
        chose = [f"model {a}={m}" for a, m in sorted(event.models.items())]
        chose += [f"instructions {a}" for a in sorted(event.instructions)]
        detail = f"{source_id}[:{upto}]" + (f" ({', '.join(chose)})" if chose else "")
        self._operated(conversation, "fork", by, event, detail)
        return conversation
