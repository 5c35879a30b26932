"""A producer's user message on NATS: its JSON body, decoded strictly or refused with a reason.

The body is ``{"conversation_id", "message_id", "text", "user"?}``; the ``Nats-Msg-Id``
header carries the message id too, so the stream's dedup window drops a producer's
retries. Anything else (not JSON, a missing field, a wrong type, an unknown field, empty
or too long a text, too many bytes) is refused with a reason, and the consumer
dead-letters it: the same bounds and id types as the HTTP edge
(``runtime/_message_limits.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import msgspec

from relaybaton.runtime._message_limits import (
    MAX_MESSAGE_BYTES,
    MAX_TEXT_CHARS,
    ConversationId,
    MessageId,
)

__all__ = ["InboundLimits", "InboundMessage", "Refusal", "RefusalCode", "decode_inbound"]


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One user message from a producer."""

    conversation_id: ConversationId
    message_id: MessageId
    text: Annotated[str, msgspec.Meta(min_length=1)]
    user: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class RefusalCode(StrEnum):
    """Why a message went to the dead letters (the counter's label)."""

    OVERSIZED = "oversized"  # more bytes than the edge accepts
    UNDECODABLE = "undecodable"  # not JSON, or not an object
    INVALID = "invalid"  # a field missing, of the wrong type, unknown, or out of bounds
    TEXT_TOO_LONG = "text_too_long"
    REFUSED = "refused"  # the runtime refused it for good (a closed conversation)
    POISON = "poison"  # failed max_deliver times


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message cannot be processed: a code for counting, a sentence for people."""

    code: RefusalCode
    reason: str


@dataclass(frozen=True, slots=True)
class InboundLimits:
    """The bounds a message must keep; the defaults are the HTTP edge's."""

    max_bytes: int = MAX_MESSAGE_BYTES
    max_text_chars: int = MAX_TEXT_CHARS


_decoder = msgspec.json.Decoder(InboundMessage)


def decode_inbound(data: bytes, limits: InboundLimits) -> InboundMessage | Refusal:
    """The message ``data`` holds, or why it cannot be processed."""
    if len(data) > limits.max_bytes:
        return Refusal(
            RefusalCode.OVERSIZED,
            f"message is {len(data)} bytes; at most {limits.max_bytes} are accepted",
        )
    try:
        message = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        return Refusal(RefusalCode.INVALID, f"message body does not fit the schema: {exc}")
    except msgspec.DecodeError as exc:
        return Refusal(RefusalCode.UNDECODABLE, f"message body is not JSON: {exc}")
    if len(message.text) > limits.max_text_chars:
        return Refusal(
            RefusalCode.TEXT_TOO_LONG,
            f"message text is {len(message.text)} characters; at most "
            f"{limits.max_text_chars} are accepted",
        )
    return message
