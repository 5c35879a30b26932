"""Failed attempts, kept in a call's route list so that the trace shows every one.

A slot appends one ``Decision`` per attempt to the list its caller passes; an attempt that
failed keeps its decision, marked with the error and how long it took, so the trace says
which model failed, how, and which one answered after it (a retry, a failover).
"""

from __future__ import annotations

import msgspec

from relaybaton.actors.routing._router import Decision
from relaybaton.adapters import ModelAdapter, ModelRequest, UserMessage
from relaybaton.errors import NoCapableModelError

__all__ = ["failed_attempt", "mark_failed", "refuse_without_vision"]


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def failed_attempt(adapter: str, error: BaseException, latency_s: float) -> Decision:
    """The record of a failed attempt on the slot's own model (no router decided)."""
    return Decision(
        candidate=adapter,
        reason=f"the slot's model {adapter}",
        policy="primary",
        error=_describe(error),
        latency_s=latency_s,
    )


def mark_failed(
    routes: list[Decision], adapter: str, error: BaseException, latency_s: float
) -> None:
    """Mark the last decision (the failed attempt's) with its error, or add one if none."""
    if routes and routes[-1].candidate == adapter and not routes[-1].error:
        routes[-1] = msgspec.structs.replace(
            routes[-1], error=_describe(error), latency_s=latency_s
        )
    else:
        routes.append(failed_attempt(adapter, error, latency_s))


def refuse_without_vision(slot: str, adapter: ModelAdapter, request: ModelRequest) -> None:
    """Refuse a request with an image for a model that cannot read images.

    A routed slot's router never picks such a model (capability comes first); this is the
    same rule for a slot that holds one model, or a held one that fails over: an image is
    never sent where it would be dropped or refused.
    """
    if adapter.capabilities.vision:
        return
    if any(isinstance(m, UserMessage) and m.images for m in request.messages):
        raise NoCapableModelError(
            f"slot {slot!r}: the message carries an image and {adapter.name} cannot read "
            "images; give the slot a vision-capable model (vision = true on a routing "
            "candidate, or a model that takes images) or send the message without it",
            needs=("vision",),
        )
