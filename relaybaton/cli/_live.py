"""``run`` on a terminal: the replies as they stream, token by token."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

import msgspec

from relaybaton.actors import ReplyDeltaEvent
from relaybaton.runtime.messages import ReplyEvent

__all__ = ["live_replies"]


def live_replies(conversation_id: str, out: TextIO) -> Callable[[str, msgspec.Struct], None]:
    """A conversation listener that writes each reply delta to ``out`` as it arrives.

    A reply that did not stream (an error, a model that answers whole) is written whole
    when it ends; each reply is one line, ``  agent: text``.
    """
    streaming: list[str] = []  # the agent whose reply is on the current line

    def on_event(cid: str, event: msgspec.Struct) -> None:
        if cid != conversation_id:
            return
        if isinstance(event, ReplyDeltaEvent) and event.text:
            if streaming and streaming[-1] != event.agent:
                out.write("\n")
                streaming.clear()
            if not streaming:
                out.write(f"  {event.agent}: ")
                streaming.append(event.agent)
            out.write(event.text)
            out.flush()
        elif isinstance(event, ReplyEvent):
            if streaming:
                out.write("\n")
                streaming.clear()
            elif event.error:
                out.write(f"  ! {event.agent} failed: {event.error}\n")
            else:
                out.write(f"  {event.agent}: {event.text}\n")
            out.flush()

    return on_event
