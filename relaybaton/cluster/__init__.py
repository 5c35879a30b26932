"""Many nodes: partitions leased over NATS KV, forwarding to a conversation's owner, producers.

Beside the service and independent of it: the flow layer wires a node's forwarding into the
HTTP edge, so neither imports the other.
"""

from relaybaton.cluster._config import DEFAULT_LEASE_TTL, ClusterConfig
from relaybaton.cluster._inbound import InboundLimits, InboundMessage
from relaybaton.cluster._membership import assignment, rendezvous_owner
from relaybaton.cluster._node import ClusterNode, Fence, PartitionHost, open_node
from relaybaton.cluster._outbound import REPLY_TO_HEADER, ReplyBody
from relaybaton.cluster._partition_consumer import ConsumerSettings
from relaybaton.cluster._partitions import (
    DEFAULT_PARTITIONS,
    Ownership,
    OwnershipListener,
    partition_of,
)
from relaybaton.cluster._producer_counters import ProducerCollector, ProducerCounters
from relaybaton.cluster._producers import ProducerConsumers, start_consumers
from relaybaton.cluster._subjects import ProducerSubjects

__all__ = [
    "ClusterConfig",
    "ClusterNode",
    "ConsumerSettings",
    "DEFAULT_LEASE_TTL",
    "DEFAULT_PARTITIONS",
    "Fence",
    "InboundLimits",
    "InboundMessage",
    "Ownership",
    "OwnershipListener",
    "PartitionHost",
    "ProducerCollector",
    "ProducerConsumers",
    "ProducerCounters",
    "ProducerSubjects",
    "REPLY_TO_HEADER",
    "ReplyBody",
    "assignment",
    "open_node",
    "partition_of",
    "rendezvous_owner",
    "start_consumers",
]
