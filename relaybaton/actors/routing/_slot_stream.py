"""Streaming through a routed slot: routing, health, retries and rollouts, token by token.

A routed slot (a router, breakers or a rollout) streams like a plain one: each attempt asks
the router once, its deltas go to ``on_text`` as the provider sends them, and a failure
before the first delta is retried on another candidate exactly as ``ModelSlot.call``
retries it, so the client never sees it (the trace and the log do). After the first delta a
failure is raised, never retried: the user already read that text, and sending the request
again would show it a second time or a different answer glued to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from relaybaton.actors.routing._attempts import mark_failed, refuse_without_vision
from relaybaton.adapters import (
    ModelRequest,
    ModelResponse,
    StreamDone,
    TextDelta,
    retries_itself,
    sending_once,
)
from relaybaton.errors import ModelError, StreamInterruptedError

if TYPE_CHECKING:
    from relaybaton.actors.routing._router import Decision
    from relaybaton.actors.routing._slot import ModelSlot

__all__ = ["stream_routed"]

# A companion of ModelSlot, in its own module for size: it uses the slot's private helpers
# (choose, publish, back off, observe) so that streamed and whole calls share one set of rules.

_AS_IS = contextlib.nullcontext()


async def stream_routed(
    slot: ModelSlot,
    request: ModelRequest,
    *,
    agent: str,
    on_text: Callable[[str], None],
    routes: list[Decision] | None,
) -> ModelResponse:
    """Stream one call through ``slot``'s router; see the module docstring.

    Raises the last ``ModelError`` when the retries are spent, or the first one after text
    went to ``on_text`` (a ``StreamInterruptedError`` says so with ``emitted``).
    """
    clock = slot.clock
    began = clock.now()
    features = await slot._features(request)
    board = slot.board
    avoid: list[str] = []
    attempt = 0
    while True:
        adapter, probe, decision = slot._choose(request, agent, features, avoid, routes is not None)
        refuse_without_vision(slot.name, adapter, request)
        if routes is not None and decision is not None:
            routes.append(decision)
        name = adapter.name
        started = clock.now()
        slot.in_flight[name] = slot.in_flight.get(name, 0) + 1
        slot.calls[name] = slot.calls.get(name, 0) + 1
        token = board.started(name, probe=probe) if board is not None else 0
        ok = False
        emitted = False
        response: ModelResponse | None = None
        try:
            with sending_once() if retries_itself(adapter) else _AS_IS:
                async for event in adapter.stream(request):
                    if isinstance(event, TextDelta):
                        if event.text:
                            emitted = True
                            on_text(event.text)
                    elif isinstance(event, StreamDone):
                        response = event.response
            if response is None:
                raise StreamInterruptedError(
                    f"the stream of {name!r} ended without its final answer", emitted=emitted
                )
            ok = True
        except ModelError as exc:
            slot._publish(request, agent, name, started, None, type(exc).__name__, attempt)
            if routes is not None:
                mark_failed(routes, name, exc, clock.now() - started)
            if slot.rollout is not None:
                slot._observe(slot.rollout, name, started, ok=False)
            attempt += 1
            avoid.append(name)
            # Text already shown is never asked for again, whatever the error says: the
            # error reaches the client as an error, after the text it has.
            if emitted or not await slot._back_off(exc, name, attempt, began):
                raise
            continue
        finally:
            slot.in_flight[name] -= 1
            if board is not None:
                board.finished(name, token, ok=ok)
        if slot.router is not None and features is not None:
            slot.router.charge(request.metadata.conversation_id, agent, response.usage)
        if slot.listeners:
            slot._publish(request, agent, name, started, response, "ok", attempt)
        rollout = slot.rollout
        if rollout is not None:
            slot._observe(rollout, name, started, ok=True)
            if rollout.wants_shadow(adapter):
                slot._send_shadow(rollout, request, agent)
        return response
