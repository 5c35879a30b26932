"""How large a user message may be, and what its ids look like, at every edge.

The HTTP edge (``service``) and the NATS producers' consumer (``cluster``) refuse the same
messages; neither imports the other, so the numbers and the id types live here, below
both: one definition, so the two edges cannot drift apart.
"""

from __future__ import annotations

import os
import random
import re
from typing import Annotated, Final

import msgspec

__all__ = [
    "CONVERSATION_ID",
    "MAX_MESSAGE_BYTES",
    "MAX_TEXT_CHARS",
    "ConversationId",
    "MessageId",
    "new_message_id",
]

MAX_MESSAGE_BYTES: Final = 1 << 20
"""Bytes of one encoded message (an HTTP body, a NATS message's payload)."""

MAX_TEXT_CHARS: Final = 32_768
"""Characters of one user message's text."""

CONVERSATION_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
"""1-128 letters, digits and ``. _ : @ -``, starting with a letter or digit: safe in a URL
path and as the last tokens of a NATS subject."""

ConversationId = Annotated[
    str, msgspec.Meta(pattern=f"^{CONVERSATION_ID.pattern}$", max_length=128)
]
"""A conversation id in a decoded body (``CONVERSATION_ID``; the length is stated too, for
the OpenAPI document's readers)."""

MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
"""A message id, the key that makes a message's delivery idempotent: 1-200 characters."""


# A generator of our own, seeded by the kernel: code that seeds ``random`` for repeatable
# runs must not make two processes name their messages alike. A forked child seeds it anew.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_message_id() -> str:
    """A message id for a message whose sender gave none: ``m-`` and 16 hex digits.

    It must not repeat within a conversation, and need not be unguessable: it names a
    message, it grants nothing (a conversation's id and the caller's token do). So it comes
    from a pseudo-random generator seeded by the kernel once, not from the kernel each
    time: one system call less per message on the edge's hot path.
    """
    return f"m-{_ids.getrandbits(64):016x}"
