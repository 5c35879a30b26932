"""The actor kernel: actors, refs, mailboxes, supervision, activations and the baton.

It knows no LLM: agents are built on it in ``relaybaton.actors``.
"""

from relaybaton.runtime._activations import ActivationTable
from relaybaton.runtime._actor import Actor, ActorContext, ActorRef
from relaybaton.runtime._clock import Clock, FakeClock, MonotonicClock, TimerHandle
from relaybaton.runtime._conversation import (
    Conversation,
    ConversationStatus,
    Lease,
    LedgerEntry,
    OwnershipRecord,
    Reply,
    Turn,
    TurnResult,
)
from relaybaton.runtime._conversation_actor import ConversationActor, OwnerHandle, ToolScope
from relaybaton.runtime._conversations import AgentTable, Conversations
from relaybaton.runtime._deadletters import DeadLetter, DeadLetters
from relaybaton.runtime._envelope import Envelope
from relaybaton.runtime._failpoints import FAILPOINTS, failpoint
from relaybaton.runtime._journal import Journal
from relaybaton.runtime._journal_events import ApprovalDecided, ApprovalRequested, JournalRecord
from relaybaton.runtime._mailbox import Mailbox, MailboxClosed
from relaybaton.runtime._store import (
    ApprovalRow,
    Durability,
    EncodedRecord,
    Head,
    MemoryStore,
    Store,
    WriteBatch,
)
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
    "ApprovalRow",
    "Clock",
    "Conversation",
    "ConversationActor",
    "ConversationStatus",
    "Conversations",
    "DeadLetter",
    "DeadLetters",
    "Durability",
    "EncodedRecord",
    "Envelope",
    "FAILPOINTS",
    "FakeClock",
    "Head",
    "Journal",
    "JournalRecord",
    "Lease",
    "LedgerEntry",
    "Mailbox",
    "MailboxClosed",
    "MemoryStore",
    "MonotonicClock",
    "OwnerHandle",
    "OwnershipRecord",
    "Reply",
    "Store",
    "Strategy",
    "SupervisionEvent",
    "Supervisor",
    "TimerHandle",
    "ToolScope",
    "Turn",
    "TurnResult",
    "WriteBatch",
    "failpoint",
    "open_system",
]
