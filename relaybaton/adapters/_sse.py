"""Server-sent events framing: a response body in, ``(event, data)`` pairs out."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

__all__ = ["iter_sse"]


async def iter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[tuple[str, str]]:
    """Yield ``(event, data)`` for every event of a server-sent event stream.

    Follows the WHATWG framing: lines end in LF, CRLF or CR (also when a CRLF is split
    across two chunks); ``:`` starts a comment; several ``data:`` lines join with LF; an
    event is dispatched at a blank line, and an event left unterminated at the end of the
    body is dropped. ``event`` is ``"message"`` when the server named none.
    """
    pending = b""
    event = ""
    data: list[str] = []
    async for chunk in chunks:
        pending += chunk
        lines = pending.splitlines(keepends=True)
        # The last piece is incomplete unless it ends in LF; a trailing CR may be half of CRLF.
        pending = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        for raw in lines:
            line = raw.rstrip(b"\r\n").decode()
            if not line:
                if data:
                    yield (event or "message", "\n".join(data))
                event, data = "", []
                continue
            if line[0] == ":":
                continue
            name, sep, value = line.partition(":")
            if sep and value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
