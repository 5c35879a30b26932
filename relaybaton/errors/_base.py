"""The base of the tree, and the errors of actors, the baton, limits and tools."""

from __future__ import annotations

from collections.abc import Collection


class RelaybatonError(Exception):
    """Base of every error raised by relaybaton."""


# --- actors -------------------------------------------------------------------------------


class ActorError(RelaybatonError):
    """A message could not be delivered to, or handled by, an actor."""


class ActorStoppedError(ActorError):
    """The actor's mailbox is closed: it was stopped and will never run again."""

    def __init__(self, actor: str) -> None:
        super().__init__(
            f"actor {actor!r} is stopped and takes no more messages; "
            "send to the ref its supervisor or activation table gives you now"
        )
        self.actor = actor


class MailboxFullError(ActorError):
    """A non-blocking send found the bounded mailbox full (backpressure)."""

    def __init__(self, actor: str, capacity: int) -> None:
        super().__init__(
            f"mailbox of actor {actor!r} is full ({capacity} messages); "
            "retry later or use the awaiting send"
        )
        self.actor = actor
        self.capacity = capacity


class AskTimeoutError(ActorError, TimeoutError):
    """No reply came before the ask's deadline."""

    def __init__(self, actor: str, timeout: float) -> None:
        super().__init__(f"actor {actor!r} did not reply within {timeout:g} s")
        self.actor = actor
        self.timeout = timeout


class CalleeFailedError(ActorError):
    """The callee raised while handling the request; the cause is ``__cause__``."""

    def __init__(self, actor: str, error: BaseException) -> None:
        super().__init__(f"actor {actor!r} failed: {type(error).__name__}: {error}")
        self.actor = actor
        self.error = error


class EscalationError(ActorError):
    """A supervisor exceeded its restart intensity and escalated to its parent."""

    def __init__(self, supervisor: str, restarts: int, period: float) -> None:
        super().__init__(
            f"supervisor {supervisor!r} gave up: more than {restarts} "
            f"restart{'s' if restarts != 1 else ''} within {period:g} s"
        )
        self.supervisor = supervisor
        self.restarts = restarts
        self.period = period


# --- ownership ----------------------------------------------------------------------------


class OwnershipError(RelaybatonError):
    """A conversation rule refused the operation; the conversation is unchanged."""

    def __init__(self, message: str, *, conversation_id: str) -> None:
        super().__init__(message)
        self.conversation_id = conversation_id


class NotOwnerError(OwnershipError):
    """The actor acted for a conversation that another agent (or a handoff) holds."""

    def __init__(self, conversation_id: str, actor: str, owner: str | None) -> None:
        holder = f"agent {owner!r}" if owner is not None else "a handoff in flight"
        super().__init__(
            f"conversation {conversation_id!r} is held by {holder}, not by {actor!r}",
            conversation_id=conversation_id,
        )
        self.actor = actor
        self.owner = owner


class StaleEpochError(OwnershipError):
    """The write carried an epoch older than the conversation's current one (fencing)."""

    def __init__(self, conversation_id: str, epoch: int, current: int) -> None:
        super().__init__(
            f"conversation {conversation_id!r}: epoch {epoch} is stale, current is {current}",
            conversation_id=conversation_id,
        )
        self.epoch = epoch
        self.current = current


class UndeclaredHandoffError(OwnershipError):
    """The sender does not list the target among its handoffs."""

    def __init__(
        self, conversation_id: str, sender: str, target: str, allowed: Collection[str]
    ) -> None:
        names = ", ".join(repr(a) for a in sorted(allowed)) or "none"
        super().__init__(
            f"agent {sender!r} may not hand off to {target!r}; its declared handoffs: {names}",
            conversation_id=conversation_id,
        )
        self.sender = sender
        self.target = target
        self.allowed = tuple(sorted(allowed))


class DuplicateConversationError(OwnershipError):
    """A conversation with this id exists already."""


class ConflictError(OwnershipError):
    """A person's action met a conversation that changed since they looked (HTTP 409).

    ``changed`` says what changed, in words for the person who acted.
    """

    def __init__(self, message: str, *, conversation_id: str, changed: str = "") -> None:
        super().__init__(message, conversation_id=conversation_id)
        self.changed = changed


class ApprovalError(RelaybatonError):
    """A decision was refused: unknown or expired request, other arguments, decided already."""

    def __init__(self, message: str, *, approval_id: str) -> None:
        super().__init__(message)
        self.approval_id = approval_id


# --- limits -------------------------------------------------------------------------------


class LimitExceededError(RelaybatonError):
    """A bound of docs/architecture.md invariant 7 was reached; the turn ends with this error."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class MaxTurnsExceededError(LimitExceededError):
    """More model turns for one user message than ``max_turns`` allows."""


class MaxHandoffsExceededError(LimitExceededError):
    """More handoffs for one user message than ``max_handoffs`` allows."""


class RecursiveCallError(LimitExceededError):
    """An agent-as-tool call would ask an agent already waiting up the call chain."""


class BudgetExceededError(LimitExceededError):
    """A model budget (dollars or tokens, per conversation or agent) is used up.

    ``budget`` says which one and how much was spent.
    """

    def __init__(self, message: str, *, budget: str) -> None:
        super().__init__(message, limit=0)
        self.budget = budget


# --- tools --------------------------------------------------------------------------------


class ToolError(RelaybatonError):
    """A tool call went wrong in a way the model is told about and can recover from."""

    def __init__(self, message: str, *, tool: str) -> None:
        super().__init__(message)
        self.tool = tool


class UnknownToolError(ToolError):
    """The model called a tool the agent does not have."""


class ToolArgumentsError(ToolError, ValueError):
    """The arguments do not match the tool's schema (the message names the field)."""


class ToolRefusedError(ToolError):
    """A guardrail or one of the tool's rules stopped the call before it ran."""
