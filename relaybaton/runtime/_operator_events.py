"""The journal's events for what people do to a conversation, and the state they build.

A person may pause a conversation before its next model or tool call, set breakpoints,
leave a note for the next model call, take the baton, reply, and hand it back. Each is a
journal record naming who did it (``by``), folded by the same transitions as the live path
(``_operator_transitions.py``), so a restarted conversation is still paused, still held by
its person, its notes still pending.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar, final

import msgspec

__all__ = [
    "PERSON_PREFIX",
    "BatonGiven",
    "BatonTaken",
    "BreakpointsSet",
    "CheckpointPassed",
    "Control",
    "ControlState",
    "Forked",
    "Halted",
    "HoldCleared",
    "HoldSet",
    "NoteAdded",
    "NotesDelivered",
    "control_of",
    "control_state",
    "is_person",
]

T = TypeVar("T")

#: An owner whose name starts with this is a person, not an agent: no activation runs for
#: them, and a turn they hold waits until they reply or hand the baton back.
PERSON_PREFIX = "person:"


def is_person(owner: str | None) -> bool:
    """Whether ``owner`` names a person (``person:<name>``)."""
    return owner is not None and owner.startswith(PERSON_PREFIX)


class HoldSet(msgspec.Struct, tag="hold_set", frozen=True, kw_only=True, gc=False):
    """A person asked the conversation to stop before its next model or tool call."""

    by: str
    reason: str = ""


class HoldCleared(msgspec.Struct, tag="hold_cleared", frozen=True, kw_only=True, gc=False):
    """A person let the conversation go on (from where it halted, if it had)."""

    by: str


class Halted(msgspec.Struct, tag="halted", frozen=True, kw_only=True, gc=False):
    """The owner stopped before ``before`` (``model``, ``tool:<name>``, ``agent:<name>``)."""

    agent: str
    before: str


class CheckpointPassed(
    msgspec.Struct, tag="checkpoint_passed", frozen=True, kw_only=True, gc=False
):
    """The owner went past the point it had halted at, once, after a resume."""

    agent: str
    before: str


class BreakpointsSet(msgspec.Struct, tag="breakpoints_set", frozen=True, kw_only=True, gc=False):
    """The points to halt before from now on (``tool:<name>``, ``agent:<name>``)."""

    by: str
    breakpoints: list[str]


class NoteAdded(msgspec.Struct, Generic[T], tag="note_added", frozen=True, kw_only=True, gc=False):
    """A person's note, for the next model call: it joins the transcript just before it."""

    by: str
    item: T


class NotesDelivered(msgspec.Struct, tag="notes_delivered", frozen=True, kw_only=True, gc=False):
    """The pending notes joined the transcript (the owner was about to call its model)."""

    agent: str


class BatonTaken(msgspec.Struct, tag="baton_taken", frozen=True, kw_only=True, gc=False):
    """A person took the baton from ``previous``; ``epoch`` is the new epoch."""

    by: str
    previous: str
    epoch: int


class BatonGiven(msgspec.Struct, tag="baton_given", frozen=True, kw_only=True, gc=False):
    """The person holding the baton gave it to ``agent`` under the new ``epoch``."""

    by: str
    agent: str
    epoch: int


class Forked(msgspec.Struct, Generic[T], tag="forked", frozen=True, kw_only=True, gc=False):
    """This conversation began as a copy of ``source``'s first ``upto`` transcript items."""

    by: str
    source: str
    upto: int
    owner: str
    items: list[T]
    # Per agent: the model (``provider:model`` or a candidate of its slot) and replacement
    # instructions the fork runs with instead of the flow's; empty in older journals.
    models: dict[str, str] = msgspec.field(default_factory=dict)
    instructions: dict[str, str] = msgspec.field(default_factory=dict)


@final
@dataclass(slots=True)
class Control:
    """What people set on one conversation (absent until the first such action).

    ``hold``: who paused it (None: running); ``halted``: the point the owner stopped
    before ("": not stopped); ``released``: the point a resume lets it pass once;
    ``notes``: notes waiting for the next model call; ``forked_from``: its origin;
    ``fork_models`` / ``fork_instructions``: what the fork chose per agent instead of the
    flow's model and instructions (read before each model call only when ``forked`` is set).
    """

    hold: HoldSet | None = None
    halted: str = ""
    halted_agent: str = ""
    released: str = ""
    breakpoints: frozenset[str] = frozenset()
    notes: list[msgspec.Struct] = field(default_factory=list)
    forked_from: str = ""
    history: list[tuple[str, str, int]] = field(default_factory=list)  # (by, action, epoch)
    fork_models: dict[str, str] = field(default_factory=dict)
    fork_instructions: dict[str, str] = field(default_factory=dict)
    forked_by: str = ""
    chose: bool = False  # the fork chose a model or instructions for some agent


class ControlState(msgspec.Struct, Generic[T], frozen=True, kw_only=True, gc=False):
    """``Control`` inside a snapshot."""

    hold: HoldSet | None = None
    halted: str = ""
    halted_agent: str = ""
    released: str = ""
    breakpoints: list[str] = msgspec.field(default_factory=list)
    notes: list[T] = msgspec.field(default_factory=list)
    forked_from: str = ""
    history: list[tuple[str, str, int]] = msgspec.field(default_factory=list)
    fork_models: dict[str, str] = msgspec.field(default_factory=dict)
    fork_instructions: dict[str, str] = msgspec.field(default_factory=dict)
    forked_by: str = ""


def control_state(control: Control | None) -> ControlState[msgspec.Struct] | None:
    """The snapshot form of ``control``."""
    if control is None:
        return None
    return ControlState(
        hold=control.hold,
        halted=control.halted,
        halted_agent=control.halted_agent,
        released=control.released,
        breakpoints=sorted(control.breakpoints),
        notes=list(control.notes),
        forked_from=control.forked_from,
        history=list(control.history),
        fork_models=dict(control.fork_models),
        fork_instructions=dict(control.fork_instructions),
        forked_by=control.forked_by,
    )


def control_of(state: ControlState[msgspec.Struct] | None) -> Control | None:
    """``Control`` back from its snapshot form."""
    if state is None:
        return None
    return Control(
        hold=state.hold,
        halted=state.halted,
        halted_agent=state.halted_agent,
        released=state.released,
        breakpoints=frozenset(state.breakpoints),
        notes=list(state.notes),
        forked_from=state.forked_from,
        history=[tuple(h) for h in state.history],  # type: ignore[misc]
        fork_models=dict(state.fork_models),
        fork_instructions=dict(state.fork_instructions),
        forked_by=state.forked_by,
        chose=bool(state.fork_models or state.fork_instructions),
    )
