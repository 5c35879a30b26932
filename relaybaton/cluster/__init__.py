"""Many nodes: partitions leased over NATS KV, forwarding to a conversation's owner, producers.

Beside the service and independent of it: the flow layer wires a node's forwarding into the
HTTP edge, so neither imports the other.
"""

from relaybaton.cluster._config import DEFAULT_LEASE_TTL, ClusterConfig
from relaybaton.cluster._membership import assignment, rendezvous_owner
from relaybaton.cluster._node import ClusterNode, Fence, PartitionHost, open_node
from relaybaton.cluster._partitions import (
    DEFAULT_PARTITIONS,
    Ownership,
    OwnershipListener,
    partition_of,
)

__all__ = [
    "DEFAULT_LEASE_TTL",
    "DEFAULT_PARTITIONS",
    "ClusterConfig",
    "ClusterNode",
    "Fence",
    "Ownership",
    "OwnershipListener",
    "PartitionHost",
    "assignment",
    "open_node",
    "partition_of",
    "rendezvous_owner",
]
