"""Tools of the customer-service example: a small, deterministic order and invoice book."""

from __future__ import annotations

from relaybaton.actors import ToolContext

_ORDERS = {
    "AB-1234": {"item": "espresso machine", "total": 42.0, "delivered_days_ago": 5},
    "CD-5678": {"item": "standing desk", "total": 389.0, "delivered_days_ago": 12},
}

# Refunds issued, keyed by the call's idempotency key: a re-run after a crash is a no-op.
REFUNDS: dict[str, tuple[str, float]] = {}


def lookup_order(order_id: str) -> dict[str, object]:
    """Look up an order by its id.

    Args:
        order_id: the order id, like AB-1234.
    """
    order = _ORDERS.get(order_id.upper())
    if order is None:
        return {"order_id": order_id, "found": False}
    return {"order_id": order_id.upper(), "found": True, **order}


def issue_refund(order_id: str, amount: float, context: ToolContext) -> str:
    """Issue a refund of an amount of money for an order.

    Args:
        order_id: the order to refund, like AB-1234.
        amount: the amount in dollars.
    """
    if amount <= 0:
        raise ValueError(f"a refund must be positive, got {amount}")
    REFUNDS.setdefault(context.idempotency_key, (order_id, amount))
    item = _ORDERS.get(order_id.upper(), {}).get("item", "order")
    return f"refunded ${amount:.2f} for your {item}, order {order_id}"


def lookup_invoice(customer_question: str) -> dict[str, object]:
    """Look up the customer's latest invoice and its charges.

    Args:
        customer_question: what the customer asked about the invoice.
    """
    return {
        "invoice": "INV-2026-118",
        "charges": [{"description": "monthly plan", "amount": 19.0}],
        "pending_authorisations": 1,
    }
