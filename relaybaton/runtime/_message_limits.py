"""How large a user message may be, and what a conversation id looks like, at every edge.

The HTTP edge (``service``) and the NATS producers' consumer (``cluster``) refuse the same
messages; neither imports the other, so the numbers live here, below both.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["CONVERSATION_ID", "MAX_MESSAGE_BYTES", "MAX_TEXT_CHARS"]

MAX_MESSAGE_BYTES: Final = 1 << 20
"""Bytes of one encoded message (an HTTP body, a NATS message's payload)."""

MAX_TEXT_CHARS: Final = 32_768
"""Characters of one user message's text."""

CONVERSATION_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
"""1-128 letters, digits and ``. _ : @ -``, starting with a letter or digit: safe in a URL
path and as the last tokens of a NATS subject."""
