"""The slot through which a request that belongs to another process is answered from there.

The service knows its routes and which of them name a conversation (or an approval, whose
conversation the store knows); it does not know where a conversation lives. When
``create_service`` is given a ``RequestForwarder``, the edge asks it about every request
that names one, after authentication and limits: the forwarder answers with the response
of the node that owns the conversation, or with None to let this node answer. Without a
forwarder nothing here runs, and a single process serves as it always did.

A cluster node implements the protocol (the flow and command layers wire it in), so the
service never imports the cluster, nor the cluster the service.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Protocol

import msgspec
from aiohttp import web

from relaybaton.runtime._message_limits import CONVERSATION_ID
from relaybaton.service._limits import read_body

__all__ = [
    "CONVERSATION_HEADER",
    "Destination",
    "RequestForwarder",
    "destination_of",
    "forward",
    "new_conversation_id",
]

CONVERSATION_HEADER = "X-Relaybaton-Conversation-Id"
"""The OpenAI-compatible endpoint's header naming the conversation a request continues."""

_CONVERSATION_ROUTES = "/v1/conversations/{conversation_id}"
_APPROVAL_ROUTE = "/v1/approvals/{approval_id}"
_CHAT_ROUTE = "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class Destination:
    """What a request names, so that a forwarder can find the node that answers it.

    Exactly one of ``conversation_id`` and ``approval_id`` is set, or neither for an
    OpenAI-compatible request that starts a new conversation. ``body`` is the request body,
    read (within the body limit) once by the edge; the handler reads the same bytes.
    """

    conversation_id: str | None = None
    approval_id: str | None = None
    body: bytes = b""


class RequestForwarder(Protocol):
    """Answers the requests that belong to another node."""

    async def forward(
        self, request: web.Request, destination: Destination
    ) -> web.StreamResponse | None:
        """The response of the node that owns ``destination``, or None to answer here.

        May raise ``ApiError`` (say, 503 with ``Retry-After`` while nobody owns it).
        """
        ...

    def new_conversation_id(self) -> str:
        """An id for a conversation that a request starts here, one this node may serve."""
        ...


async def forward(
    request: web.Request, forwarder: RequestForwarder, max_body_bytes: int
) -> web.StreamResponse | None:
    """The owner's answer when another node owns what ``request`` names, else None."""
    destination = await destination_of(request, max_body_bytes)
    if destination is None:
        return None
    return await forwarder.forward(request, destination)


def new_conversation_id(forwarder: RequestForwarder | None) -> str:
    """An id for a conversation a request starts without naming one (with a forwarder, one
    whose partition this node holds)."""
    if forwarder is not None:
        return forwarder.new_conversation_id()
    return f"chat-{secrets.token_hex(8)}"


class _UserField(msgspec.Struct):
    user: str | None = None


_user_decoder = msgspec.json.Decoder(_UserField)


async def destination_of(request: web.Request, max_body_bytes: int) -> Destination | None:
    """What ``request`` names, or None when it names nothing a node owns (answer here).

    A malformed id or body also gives None: the local handler refuses it with its own 400.
    """
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    if route.startswith(_CONVERSATION_ROUTES):
        conversation_id = request.match_info.get("conversation_id", "")
        if not CONVERSATION_ID.fullmatch(conversation_id):
            return None
        body = await _body(request, max_body_bytes)
        return Destination(conversation_id=conversation_id, body=body)
    if route == _APPROVAL_ROUTE and request.method == "POST":
        body = await _body(request, max_body_bytes)
        return Destination(approval_id=request.match_info["approval_id"], body=body)
    if route == _CHAT_ROUTE and request.method == "POST":
        body = await _body(request, max_body_bytes)
        named = request.headers.get(CONVERSATION_HEADER)
        if not named:
            try:
                named = _user_decoder.decode(body).user
            except msgspec.DecodeError:  # not JSON, or no object: the handler says so
                return None
        if named and len(named) > 128:  # the handler refuses it
            return None
        return Destination(conversation_id=named or None, body=body)
    return None


async def _body(request: web.Request, max_body_bytes: int) -> bytes:
    if request.method in {"GET", "HEAD", "DELETE"} and not request.body_exists:
        return b""
    return await read_body(request, max_body_bytes)
