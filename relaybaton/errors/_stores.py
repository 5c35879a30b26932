"""Errors of what keeps state: the knowledge graph, the journal stores, cluster nodes."""

from __future__ import annotations

from collections.abc import Collection

from relaybaton.errors._base import RelaybatonError

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
    """A cluster node wrote for partitions another node fenced since: nothing was written.
    ``conversation_ids`` were refused; the writer lost ``partitions`` and must step down."""

    def __init__(
        self, *, store: str, conversation_ids: Collection[str], partitions: Collection[int]
    ) -> None:
        self.conversation_ids, self.partitions = frozenset(conversation_ids), frozenset(partitions)
        super().__init__(
            f"journal {store} refused the writes of {len(conversation_ids)} conversation(s):"
            f" partition(s) {sorted(partitions)} are held by another node under a newer lease"
            " generation; this node stops acting for them (it steps down by itself)",
            store=store,
        )


class ClusterError(RelaybatonError):
    """A cluster node cannot do what was asked (``relaybaton.cluster``)."""


class PartitionNotOwnedError(ClusterError):
    """Not this node's partition: ask ``owner`` (None while it moves) or retry (HTTP 503)."""

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
            f" not by this node {node_id!r}; send it to the owner or retry in {retry_after:g} s"
        )
        self.conversation_id, self.partition, self.node_id = conversation_id, partition, node_id
        self.owner, self.retry_after = owner, retry_after


class ClusterUnavailableError(ClusterError, ConnectionError):
    """The NATS server of the cluster did not answer."""
