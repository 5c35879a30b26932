"""The crash tests' side effect: one line per refund in the file $RELAYBATON_TEST_EFFECTS.

Every attempt is logged (with its idempotency key) before the effect is applied once per
key, as a real payment API keyed by an idempotency key would: the test then checks that a
re-run after a crash used the same key, so the refund happened once.
"""

from __future__ import annotations

import json
import os

from relaybaton.actors import ToolContext


def _lines(path: str) -> list[dict[str, object]]:
    try:
        with open(path, encoding="utf-8") as file:
            return [json.loads(line) for line in file if line.strip()]
    except FileNotFoundError:
        return []


def issue_refund(order_id: str, amount: float, context: ToolContext) -> str:
    """Issue a refund of an amount of money for an order.

    Args:
        order_id: the order to refund.
        amount: the amount in dollars.
    """
    path = os.environ["RELAYBATON_TEST_EFFECTS"]
    applied = any(
        line["key"] == context.idempotency_key and line["applied"] for line in _lines(path)
    )
    with open(path, "a", encoding="utf-8") as file:
        record = {"key": context.idempotency_key, "amount": amount, "applied": not applied}
        file.write(json.dumps(record) + "\n")
        file.flush()
        os.fsync(file.fileno())
    return f"refunded ${amount:.2f} on order {order_id}"
