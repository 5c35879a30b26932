"""The baton: the registry that enforces the ownership invariants of ``docs/architecture.md``.

``Conversations`` is the kernel's one facade for the agent layer, composed of its parts,
one concern each: the core and the owner check (``_registry.py``), user messages and turns
(``_turns.py``), the baton's moves (``_handoffs.py``), the usage ledger (``_ledger.py``),
approvals (``_approvals.py``), reloading and resuming (``_recovery.py``) and agents as
tools (``_asks.py``), and what people do to a conversation (``_operator.py``). Every change
they make is a transition of ``_transitions.py`` (``_operator_transitions.py``), the one
the journal's fold replays.

1. one owner: ``owner`` is set, or ``in_flight`` holds the ``BatonPass`` message, never both;
2. only the owner speaks: replies and transcript writes need ownership and the current epoch,
   and user messages queue in the conversation's inbox, one active turn at a time;
3. declared edges only: ``handoff`` refuses a target not in the sender's handoffs;
4. fencing: epochs only grow, and a stale epoch is refused;
5. exactly once: a message id is accepted once per conversation; a repeat gets the same
   result and is not processed again;
6. tools keep the baton: ``ask_agent`` never changes the owner;
7. bounded: ``max_turns`` model turns and ``max_handoffs`` handoffs per user message;
9. return address: a handoff with a return gives a lease; when it ends the baton goes back.
"""

from __future__ import annotations

from typing import final

from relaybaton.runtime._asks import Asks
from relaybaton.runtime._handoffs import Handoffs
from relaybaton.runtime._ledger import Ledger
from relaybaton.runtime._operator import Operators
from relaybaton.runtime._recovery import Recovery
from relaybaton.runtime._registry import AgentTable

__all__ = ["AgentTable", "Conversations"]


@final
class Conversations(Handoffs, Ledger, Recovery, Operators, Asks):
    """Owns every conversation of one flow and routes its messages to the right agent."""
