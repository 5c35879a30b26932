"""Every exception relaybaton raises, under one base.

The tree::

    RelaybatonError
    ├── ActorError
    │   ├── ActorStoppedError            a send to an actor whose mailbox is closed
    │   ├── MailboxFullError             a non-blocking send to a full bounded mailbox
    │   ├── AskTimeoutError              (also TimeoutError) no reply before the deadline
    │   ├── CalleeFailedError            the callee raised while handling the request
    │   └── EscalationError              a supervisor gave up: restart intensity exceeded
    ├── OwnershipError                   a baton rule (invariants 1-4, 6, 9) refused
    │   ├── NotOwnerError                the actor acted for a conversation it does not own
    │   ├── StaleEpochError              the write carried an epoch older than the current one
    │   ├── UndeclaredHandoffError       a handoff to an agent not listed in the sender's edges
    │   ├── DuplicateConversationError   a conversation id that already exists was created
    │   └── ConflictError                a person acted on a conversation that changed since
    ├── ApprovalError                    a decision that cannot be taken (unknown, stale, ...)
    ├── LimitExceededError               invariant 7: a bound was hit
    │   ├── MaxTurnsExceededError
    │   ├── MaxHandoffsExceededError
    │   ├── RecursiveCallError           an agent-as-tool call would wait on itself
    │   └── BudgetExceededError          a conversation's or agent's model budget is spent
    ├── ToolError                        a tool call the model can recover from
    │   ├── UnknownToolError
    │   ├── ToolArgumentsError           the arguments fail the tool's schema
    │   └── ToolRefusedError             a guardrail or a tool rule stopped the call
    ├── ModelError                       a model call failed; ``retryable`` says what to do
    │   ├── RateLimitedError             429; ``retry_after`` in seconds when the provider said
    │   ├── ModelOverloadedError         Anthropic 529, OpenAI 503
    │   ├── ModelTimeoutError            (also TimeoutError) connect, first byte or total
    │   ├── ModelConnectionError         (also ConnectionError)
    │   ├── AuthenticationError          401/403: the key is wrong or lacks access
    │   ├── BadRequestError              400: the request itself is wrong
    │   │   └── ContextLengthExceededError
    │   ├── ContentFilteredError         the provider refused the content
    │   ├── MalformedResponseError       the provider answered something we cannot read
    │   ├── StreamInterruptedError       a stream ended before its end marker
    │   └── NoCapableModelError          no candidate of the slot has what the call needs
    ├── ConfigError                      (also ValueError) configuration misuse: a flow file, a
    │   │                                constructor argument, a model id, an environment variable
    │   ├── FlowError                    one or more problems in a flow file, with paths
    │   ├── MissingCredentialsError      an API key variable is not set
    │   └── StoreInUseError              another process holds the journal store (one per store)
    ├── GraphError                       the knowledge graph refused an operation; nothing changed
    │   ├── EntityNotFoundError          (also LookupError) an operation named a missing entity
    │   └── GraphFileError               (also ValueError) a memory JSONL file cannot be read
    ├── StoreError                       a journal store failed or refused an operation
    │   ├── StoreUnavailableError        (also ConnectionError) the database did not answer, twice
    │   └── FencedWriteError             a cluster node's lease generation for a partition is stale
    ├── ClusterError                     a cluster node cannot do what was asked
    │   ├── PartitionNotOwnedError       this node does not hold the conversation's partition
    │   └── ClusterUnavailableError      (also ConnectionError) NATS did not answer
    └── ApiError                         the HTTP service refused a request; ``status``, ``code``
                                         and ``param`` make its JSON error answer

Classes are named by condition, carry their context as attributes, and subclass a builtin
where the meaning matches, so ``except TimeoutError`` catches an ask that timed out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import final

__all__ = [
    "ActorError",
    "ActorStoppedError",
    "ApiError",
    "ApprovalError",
    "AskTimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CalleeFailedError",
    "ConfigError",
    "ClusterError",
    "ClusterUnavailableError",
    "ConflictError",
    "ContentFilteredError",
    "ContextLengthExceededError",
    "DuplicateConversationError",
    "EntityNotFoundError",
    "EscalationError",
    "FencedWriteError",
    "FlowError",
    "FlowProblem",
    "GraphError",
    "GraphFileError",
    "LimitExceededError",
    "MailboxFullError",
    "MalformedResponseError",
    "MaxHandoffsExceededError",
    "MaxTurnsExceededError",
    "MissingCredentialsError",
    "ModelConnectionError",
    "ModelError",
    "ModelOverloadedError",
    "ModelTimeoutError",
    "NoCapableModelError",
    "NotOwnerError",
    "OwnershipError",
    "PartitionNotOwnedError",
    "RateLimitedError",
    "RecursiveCallError",
    "RelaybatonError",
    "StaleEpochError",
    "StoreError",
    "StoreInUseError",
    "StoreUnavailableError",
    "StreamInterruptedError",
    "ToolArgumentsError",
    "ToolError",
    "ToolRefusedError",
    "UndeclaredHandoffError",
    "UnknownToolError",
]


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


# --- models -------------------------------------------------------------------------------


class ModelError(RelaybatonError):
    """A model call failed.

    Attributes:
        retryable: whether the same request may succeed if sent again.
        provider: the provider that failed (``openai``, ``simulated``, ...).
        status: the HTTP status when there was one.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        if retryable is not None:
            self.retryable = retryable


class RateLimitedError(ModelError):
    """The provider rate-limited the call (429)."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status=status)
        self.retry_after = retry_after


class ModelOverloadedError(ModelError):
    """The provider is overloaded (Anthropic 529, OpenAI 503)."""

    retryable = True


class ModelTimeoutError(ModelError, TimeoutError):
    """The call timed out; ``phase`` is ``connect``, ``first_byte`` or ``total``."""

    retryable = True

    def __init__(self, message: str, *, provider: str = "", phase: str = "total") -> None:
        super().__init__(message, provider=provider)
        self.phase = phase


class ModelConnectionError(ModelError, ConnectionError):
    """The connection to the provider failed or broke."""

    retryable = True


class AuthenticationError(ModelError):
    """The provider refused the credentials (401/403)."""


class BadRequestError(ModelError):
    """The provider refused the request as malformed (400)."""


class ContextLengthExceededError(BadRequestError):
    """The request is longer than the model's context window."""


class ContentFilteredError(ModelError):
    """The provider refused to produce or accept the content."""


class MalformedResponseError(ModelError):
    """The provider's answer could not be decoded."""

    retryable = True


class StreamInterruptedError(ModelError):
    """A stream ended before its end marker.

    Retryable only when nothing was emitted yet: text already shown to a user must never
    be silently produced a second time.
    """

    def __init__(self, message: str, *, provider: str = "", emitted: bool = False) -> None:
        super().__init__(message, provider=provider, retryable=not emitted)
        self.emitted = emitted


class NoCapableModelError(ModelError):
    """No candidate of a slot can take the call; ``needs`` lists what was missing."""

    def __init__(self, message: str, *, needs: tuple[str, ...] = ()) -> None:
        super().__init__(message, provider="router", retryable=False)
        self.needs = needs


# --- configuration ------------------------------------------------------------------------


class ConfigError(RelaybatonError, ValueError):
    """Configuration is wrong; nothing was started.

    The one class for configuration misuse: a flow file, an argument a constructor refuses
    (a mailbox capacity, an agent name, an approval rule, a routing condition, ...), a model
    id or an environment variable. It is also a ``ValueError``, which these refusals were
    before they had a class of their own.
    """


class FlowProblem:
    """One problem in a flow file: where it is and what to do."""

    __slots__ = ("message", "path")

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def __repr__(self) -> str:
        return f"FlowProblem({self.path!r}, {self.message!r})"


class FlowError(ConfigError):
    """A flow file has one or more problems; ``problems`` lists them all."""

    def __init__(self, source: str, problems: Sequence[FlowProblem]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the flow\n{lines}")
        self.source = source
        self.problems = tuple(problems)


class MissingCredentialsError(ConfigError):
    """A model needs a key from an environment variable that is not set."""

    def __init__(self, variable: str, model: str) -> None:
        super().__init__(
            f"model {model!r} needs an API key: set the environment variable {variable}"
        )
        self.variable = variable
        self.model = model


class StoreInUseError(ConfigError):
    """Another process holds the journal store: outside cluster mode one process serves it.

    ``holder`` describes that process (``pid``, ``host``, ``command``, ``since``, and the
    ``address`` of its HTTP service when it serves one); ``store`` names the store without
    secrets.
    """

    def __init__(self, message: str, *, store: str, holder: Mapping[str, object]) -> None:
        super().__init__(message)
        self.store = store
        self.holder = dict(holder)


# --- knowledge graph ----------------------------------------------------------------------


class GraphError(RelaybatonError):
    """The knowledge graph refused an operation; the graph is unchanged."""


class EntityNotFoundError(GraphError, LookupError):
    """An operation named an entity that does not exist in the graph's namespace.

    The message is exactly the MCP memory server's (``Entity with name X not found``),
    because MCP clients and the models behind them already know that text.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"Entity with name {name} not found")
        self.name = name


class GraphFileError(GraphError, ValueError):
    """A line of a memory JSONL file is not an entity or a relation the graph can hold."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


# --- journal stores -----------------------------------------------------------------------


class StoreError(RelaybatonError):
    """A journal store failed or refused an operation; a failed write wrote nothing.

    ``store`` names the store (a file path, or a Postgres host and schema) without secrets.
    """

    def __init__(self, message: str, *, store: str) -> None:
        super().__init__(message)
        self.store = store


class StoreUnavailableError(StoreError, ConnectionError):
    """The database could not be reached, and a fresh connection failed too."""


class FencedWriteError(StoreError):
    """A cluster node wrote for partitions whose fence another node has raised since.

    Nothing of the batch was written. ``conversation_ids`` are the conversations the store
    refused (the rest of the batch may be written again without them); ``partitions`` their
    partitions. The writer lost those partitions: it must stop acting for them.
    """

    def __init__(
        self,
        *,
        store: str,
        conversation_ids: Collection[str],
        partitions: Collection[int],
    ) -> None:
        shown = ", ".join(str(p) for p in sorted(partitions))
        super().__init__(
            f"journal {store} refused the writes of {len(conversation_ids)} conversation(s):"
            f" partition(s) {shown} are now held by another node under a newer lease"
            " generation; this node must stop acting for them (it steps down by itself)",
            store=store,
        )
        self.conversation_ids = frozenset(conversation_ids)
        self.partitions = frozenset(partitions)


# --- many nodes ---------------------------------------------------------------------------


class ClusterError(RelaybatonError):
    """A cluster node cannot do what was asked."""


class PartitionNotOwnedError(ClusterError):
    """This node does not hold the conversation's partition: ask its owner (or retry).

    ``owner`` is the node id that holds it as last seen here (None while it moves);
    ``retry_after`` the seconds after which asking again is worth it. The HTTP edge
    forwards the request to ``owner``, or answers 503 with ``Retry-After``.
    """

    def __init__(
        self,
        conversation_id: str,
        partition: int,
        *,
        node_id: str,
        owner: str | None,
        retry_after: float = 1.0,
    ) -> None:
        holder = f"node {owner!r}" if owner else "no node right now (it is moving)"
        super().__init__(
            f"conversation {conversation_id!r} is in partition {partition}, held by {holder},"
            f" not by this node {node_id!r}; send it to the owner or retry in"
            f" {retry_after:g} s"
        )
        self.conversation_id = conversation_id
        self.partition = partition
        self.node_id = node_id
        self.owner = owner
        self.retry_after = retry_after


class ClusterUnavailableError(ClusterError, ConnectionError):
    """The NATS server of the cluster did not answer."""


# --- the HTTP service ---------------------------------------------------------------------


@final
class ApiError(RelaybatonError):
    """A request the HTTP service refuses; its middleware turns it into an error answer.

    It never leaves the service: handlers raise it, the middleware answers it with
    ``status`` and the JSON body ``{"error": {"message", "type", "param", "code"}}`` and
    counts it by ``code``.

    Attributes:
        status: the HTTP status of the answer (400, 401, 404, 429, ...).
        message: the sentence the client reads.
        code: a stable, machine-readable reason (``invalid_body``, ``rate_limited``, ...).
        param: the request field at fault, when one is.
        headers: extra answer headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
