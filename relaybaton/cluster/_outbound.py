"""What a node publishes on NATS: each turn's reply, its events, and dead letters.

A reply goes to the subject the producer named in the ``Relaybaton-Reply-To`` header (an
inbox it listens on), else to ``<prefix>.out.<conversation_id>``. A header and not the
NATS reply subject: a message published to a stream's subject is answered by the stream
with its publish acknowledgement, so a NATS request would get that, not the reply.

Replies are published at least once: a message redelivered after a crash between the
journal's commit and the ack is not processed again, but its reply (the same, from the
journal) is published again; a producer keys replies by ``message_id``.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from relaybaton.actors import Paused
from relaybaton.cluster._inbound import Refusal
from relaybaton.cluster._subjects import ProducerSubjects
from relaybaton.runtime import TurnResult

__all__ = [
    "DEAD_CODE_HEADER",
    "DEAD_REASON_HEADER",
    "MOVED_FROM_HEADER",
    "ORIGINAL_SUBJECT_HEADER",
    "REPLY_TO_HEADER",
    "ReplyBody",
    "ReplyPart",
    "encode_reply",
    "publish_dead_letter",
    "reply_body",
]

REPLY_TO_HEADER: Final = "Relaybaton-Reply-To"
DEAD_REASON_HEADER: Final = "Relaybaton-Dead-Reason"
DEAD_CODE_HEADER: Final = "Relaybaton-Dead-Code"
ORIGINAL_SUBJECT_HEADER: Final = "Relaybaton-Original-Subject"
MOVED_FROM_HEADER: Final = "Relaybaton-Moved-From"

Status = Literal["replied", "awaiting_approval", "failed"]


class ReplyPart(msgspec.Struct, frozen=True, kw_only=True):
    """One answer of the turn and the agent that gave it."""

    agent: str
    text: str


class ReplyBody(msgspec.Struct, frozen=True, kw_only=True):
    """A turn's outcome as published: ``replied``, ``awaiting_approval`` or ``failed``.

    ``text`` is every answer, one per line (or, while waiting for a person, a sentence
    saying so); ``agent`` the one that answered last; ``error`` why a turn failed.
    """

    conversation_id: str
    message_id: str
    status: Status
    text: str
    agent: str | None = None
    replies: tuple[ReplyPart, ...] = ()
    approval_ids: tuple[str, ...] = ()
    error: str | None = None


_encoder = msgspec.json.Encoder()


def reply_body(message_id: str, outcome: TurnResult | Paused) -> ReplyBody:
    """The published form of a turn's outcome."""
    if isinstance(outcome, Paused):
        return ReplyBody(
            conversation_id=outcome.conversation_id,
            message_id=message_id,
            status="awaiting_approval",
            text=outcome.text,
            approval_ids=outcome.approval_ids,
        )
    parts = tuple(ReplyPart(agent=r.agent, text=r.text) for r in outcome.replies)
    return ReplyBody(
        conversation_id=outcome.conversation_id,
        message_id=message_id,
        status="failed" if outcome.error is not None else "replied",
        text=outcome.text,
        agent=parts[-1].agent if parts else outcome.owner,
        replies=parts,
        error=outcome.error,
    )


def encode_reply(message_id: str, outcome: TurnResult | Paused) -> bytes:
    """A turn's outcome as the JSON published on the reply subject."""
    return _encoder.encode(reply_body(message_id, outcome))


def _header_text(text: str) -> str:
    # A header value is one line of printable text.
    return " ".join(text.split())[:1000]


async def publish_dead_letter(
    js: JetStreamContext, subjects: ProducerSubjects, msg: Msg, refusal: Refusal
) -> None:
    """Keep ``msg`` in the dead-letter stream with why it was refused; return once stored.

    Its ``Nats-Msg-Id`` is its place in the inbound stream, so dead-lettering it again
    after a crash (before its ack) stores it once.
    """
    headers = {
        DEAD_CODE_HEADER: refusal.code.value,
        DEAD_REASON_HEADER: _header_text(refusal.reason),
        ORIGINAL_SUBJECT_HEADER: msg.subject,
        "Nats-Msg-Id": f"{subjects.stream}:{msg.metadata.sequence.stream}",
    }
    await js.publish(subjects.dead, msg.data, headers=headers, stream=subjects.dead_stream)
