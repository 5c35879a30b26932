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

from relaybaton.errors._base import (
    ActorError,
    ActorStoppedError,
    ApprovalError,
    AskTimeoutError,
    BudgetExceededError,
    CalleeFailedError,
    ConflictError,
    DuplicateConversationError,
    EscalationError,
    LimitExceededError,
    MailboxFullError,
    MaxHandoffsExceededError,
    MaxTurnsExceededError,
    NotOwnerError,
    OwnershipError,
    RecursiveCallError,
    RelaybatonError,
    StaleEpochError,
    ToolArgumentsError,
    ToolError,
    ToolRefusedError,
    UndeclaredHandoffError,
    UnknownToolError,
)
from relaybaton.errors._config import (
    ConfigError,
    FlowError,
    FlowProblem,
    MissingCredentialsError,
    StoreInUseError,
)
from relaybaton.errors._models import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    MalformedResponseError,
    ModelConnectionError,
    ModelError,
    ModelOverloadedError,
    ModelTimeoutError,
    NoCapableModelError,
    RateLimitedError,
    StreamInterruptedError,
)
from relaybaton.errors._service import (
    ApiError,
)
from relaybaton.errors._stores import (
    ClusterError,
    ClusterUnavailableError,
    EntityNotFoundError,
    FencedWriteError,
    GraphError,
    GraphFileError,
    PartitionNotOwnedError,
    StoreError,
    StoreUnavailableError,
)

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
    "ClusterError",
    "ClusterUnavailableError",
    "ConfigError",
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
