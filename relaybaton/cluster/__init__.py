"""Many nodes: partitions leased over NATS KV, forwarding to a conversation's owner, producers.

Beside the service and independent of it: the flow layer wires a node's forwarding into the
HTTP edge, so neither imports the other.
"""

__all__: list[str] = []
