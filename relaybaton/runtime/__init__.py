"""The actor kernel: actors, refs, mailboxes, supervision, activations and the baton.

It knows no LLM: agents are built on it in ``relaybaton.actors``. Exported are what an
embedding program needs (``open_system``, actors, refs, supervisors, activations, clocks)
and the seams the layers above build on: the conversation actor and its registry, the
conversation and its turn result, approvals, and the journal with its store port. The wire
messages are in ``relaybaton.runtime.messages``; ``FakeClock`` is in ``relaybaton.testing``.
"""

from relaybaton.runtime._activations import ActivationTable
from relaybaton.runtime._actor import Actor, ActorContext, ActorRef
from relaybaton.runtime._clock import Clock, MonotonicClock, TimerHandle
from relaybaton.runtime._conversation import Conversation, ConversationStatus, TurnResult
from relaybaton.runtime._conversation_actor import ConversationActor, OwnerHandle, ToolScope
from relaybaton.runtime._conversations import AgentTable, Conversations
from relaybaton.runtime._envelope import Envelope
from relaybaton.runtime._journal import Journal
from relaybaton.runtime._journal_events import ApprovalDecided, ApprovalRequested, Feedback
from relaybaton.runtime._store import Durability, Store
from relaybaton.runtime._supervision import Strategy, SupervisionEvent, Supervisor
from relaybaton.runtime._system import ActorSystem, open_system

__all__ = [
    "ActivationTable",
    "Actor",
    "ActorContext",
    "ActorRef",
    "ActorSystem",
    "AgentTable",
    "ApprovalDecided",
    "ApprovalRequested",
    "Clock",
    "Conversation",
    "ConversationActor",
    "ConversationStatus",
    "Conversations",
    "Durability",
    "Envelope",
    "Feedback",
    "Journal",
    "MonotonicClock",
    "OwnerHandle",
    "Store",
    "Strategy",
    "SupervisionEvent",
    "Supervisor",
    "TimerHandle",
    "ToolScope",
    "TurnResult",
    "open_system",
]
