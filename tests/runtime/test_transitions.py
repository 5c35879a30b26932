"""The single-apply seam: the fold replays an event with the transition the live path used."""

from __future__ import annotations

import msgspec

from relaybaton.runtime import Conversation
from relaybaton.runtime import _transitions as transitions
from relaybaton.runtime._conversation import OwnershipRecord
from relaybaton.runtime._fold import apply
from relaybaton.runtime._journal_events import (
    Accepted,
    BatonAccepted,
    HandedOff,
    JournalRecord,
    TurnFailed,
)


class _Text(msgspec.Struct, frozen=True):
    text: str


def _opened(owner: str = "a") -> Conversation:
    conversation = Conversation(id="c", owner=owner)
    conversation.ownership.append(OwnershipRecord(owner=owner, epoch=0))
    return conversation


def _record(seq: int, event: msgspec.Struct) -> JournalRecord[_Text]:
    return JournalRecord(conversation_id="c", seq=seq, epoch=0, at=0.0, event=event)  # type: ignore[arg-type]


def _leased(conversation: Conversation, *, live: bool) -> None:
    """Accept a message, hand off to ``b`` with a return, and let ``b`` take the baton."""
    if live:
        transitions.accepted(conversation, "m1", _Text("hi"), True, None)
        transitions.handed_off(
            conversation, "a", "b", 1, "m1", return_to="a", lease_turns=1, note=""
        )
        transitions.baton_accepted(conversation, "b", 1)
        return
    events = [
        Accepted(message_id="m1", item=_Text("hi"), started=True),
        HandedOff(sender="a", target="b", epoch=1, message_id="m1", return_to="a"),
        BatonAccepted(agent="b", epoch=1),
    ]
    for seq, event in enumerate(events, start=1):
        apply(conversation, _record(seq, event))


def test_live_and_replay_build_the_same_conversation() -> None:
    live, replayed = _opened(), _opened()
    _leased(live, live=True)
    _leased(replayed, live=False)
    assert (live.owner, live.epoch, live.leases, live.ownership) == (
        replayed.owner,
        replayed.epoch,
        replayed.leases,
        replayed.ownership,
    )
    assert live.owner == "b"
    assert [lease.return_to for lease in live.leases] == ["a"]


def test_a_turn_no_agent_held_counts_no_lease_down_live_or_replayed() -> None:
    # A baton that could not be delivered ends its turn with an empty agent: the lease of
    # the holder stays, as it did live (replay used to count it down).
    live, replayed = _opened(), _opened()
    _leased(live, live=True)
    _leased(replayed, live=False)
    transitions.turn_failed(live, "", "stopped")
    apply(replayed, _record(4, TurnFailed(agent="", error="stopped")))
    for conversation in (live, replayed):
        assert conversation.owner == "b"
        assert conversation.epoch == 1
        assert len(conversation.leases) == 1
        assert conversation.seen["m1"].result is not None


def test_a_reply_ends_the_lease_and_returns_the_baton() -> None:
    conversation = _opened()
    _leased(conversation, live=True)
    turn = transitions.replied(conversation, "b", "done")
    assert turn is not None
    assert turn.result is not None
    assert turn.result.replies[0].text == "done"
    assert (conversation.owner, conversation.epoch, conversation.leases) == ("a", 2, ())
