"""The native API's routes for people: list conversations, and act on one.

Listing reads the journal store's heads (``list_heads``: status, owner, time window,
pages), or, with no store, the conversations in memory through the same reference
listing. The actions (pause, resume, breakpoints, notes, the baton, forks) go through
``relaybaton.actors``' ``Operations``, in the name of the caller: ``person:<token label>``
(``person:loopback`` for a loopback client when no token is configured). A stale or
conflicting action is a 409 whose message says what changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar, final

import msgspec
from aiohttp import web

from relaybaton.actors._operations import Operations
from relaybaton.errors import ConfigError, ConflictError, OwnershipError
from relaybaton.runtime import Conversation, ConversationStatus
from relaybaton.runtime._listing import HeadPage, HeadQuery, select_heads
from relaybaton.runtime._operator import person
from relaybaton.runtime._store import Head
from relaybaton.service._api_types import (
    BatonGiveIn,
    BatonReplyIn,
    BatonTakeIn,
    BreakpointsIn,
    ConversationItem,
    ConversationList,
    ForkIn,
    NoteIn,
    OperatorState,
    PauseIn,
    ResumeIn,
)
from relaybaton.service._auth import current_token
from relaybaton.service._errors import ApiError
from relaybaton.service._limits import read_body

if TYPE_CHECKING:
    from relaybaton.service._server import Service
    from relaybaton.service.console import Console
    from relaybaton.service.console._options import ConsoleOptions

__all__ = ["OperatorApi", "operator_state"]

T = TypeVar("T")
_encoder = msgspec.json.Encoder()
_MAX_LIMIT = 500


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(data), status=status, content_type="application/json")


def caller() -> str:
    """The person acting: the request's token label, as an owner name."""
    token = current_token.get()
    return person(token.label if token is not None else "loopback")


def operator_state(conversation: Conversation) -> OperatorState:
    """A conversation as a person sees it before acting."""
    control = conversation.control
    hold = control.hold if control is not None else None
    return OperatorState(
        conversation_id=conversation.id,
        owner=conversation.owner,
        epoch=conversation.epoch,
        status=str(conversation.status),
        waiting_for_a_person=conversation.waiting_for_a_person,
        paused_by=hold.by if hold is not None else None,
        halted_before=(control.halted or None) if control is not None else None,
        breakpoints=sorted(control.breakpoints) if control is not None else [],
        notes_pending=len(control.notes) if control is not None else 0,
        forked_from=(control.forked_from or None) if control is not None else None,
        pending_approvals=[a.approval_id for a in conversation.pending_approvals],
        fork_models=dict(control.fork_models) if control is not None else {},
        fork_instructions_for=sorted(control.fork_instructions) if control is not None else [],
    )


def _float(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if value != value or value in {float("inf"), float("-inf")}:  # noqa: PLR0124 - NaN
        raise ApiError(
            400,
            f"{name} must be a time in seconds since the epoch (a number), got {raw[:40]!r}",
            code="invalid_query",
            param=name,
        )
    return value


def listing_query(request: web.Request) -> HeadQuery:
    """The listing's query from the request's parameters; 400 naming a bad one."""
    raw_limit = request.query.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= _MAX_LIMIT:
        raise ApiError(
            400,
            f"limit must be a whole number from 1 to {_MAX_LIMIT}, got {raw_limit[:40]!r}",
            code="invalid_query",
            param="limit",
        )
    statuses = (
        tuple(request.query.get("status", "").split(",")) if "status" in request.query else ()
    )
    known = {str(s) for s in ConversationStatus}
    for status in statuses:
        if status not in known:
            raise ApiError(
                400,
                f"status {status[:40]!r} is not one of {', '.join(sorted(known))} "
                "(separate several with commas)",
                code="invalid_query",
                param="status",
            )
    return HeadQuery(
        statuses=statuses,
        owner=request.query.get("owner") or None,
        updated_after=_float(request, "updated_after"),
        updated_before=_float(request, "updated_before"),
        cursor=request.query.get("cursor") or None,
        limit=int(raw_limit),
    )


@final
class OperatorApi:
    """The routes; ``add_routes`` puts them on the service's router."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.runtime = service.runtime
        self.operations = Operations(service.runtime)
        # Without a store, the listing's update times: the Unix time of the last event of
        # each conversation, which the event hub notes as it logs it. With a store, its
        # heads carry them.
        self.touched: dict[str, float] = {}
        if self.runtime.conversations.journal is None:
            service.hub.touched = self.touched

    def close(self) -> None:
        """Stop noting update times."""
        if self.service.hub.touched is self.touched:
            self.service.hub.touched = None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the routes (before the conversation routes they share a prefix with)."""
        base = "/v1/conversations/{conversation_id}"
        router.add_get("/openapi.json", self._openapi)
        router.add_get("/v1/conversations", self.list_conversations)
        router.add_post(f"{base}/pause", self._act(PauseIn, self._pause))
        router.add_post(f"{base}/resume", self._act(ResumeIn, self._resume))
        router.add_put(f"{base}/breakpoints", self._act(BreakpointsIn, self._breakpoints))
        router.add_post(f"{base}/notes", self._act(NoteIn, self._note))
        router.add_post(f"{base}/baton/take", self._act(BatonTakeIn, self._take))
        router.add_post(f"{base}/baton/reply", self._act(BatonReplyIn, self._reply))
        router.add_post(f"{base}/baton/give", self._act(BatonGiveIn, self._give))
        router.add_post(f"{base}/fork", self._act(ForkIn, self._fork))

    def mount_console(self, router: web.UrlDispatcher, options: ConsoleOptions) -> Console:
        """Serve the console's pages beside the API; returns it (the edge asks it about
        its paths and sessions)."""
        from relaybaton.service.console import Console  # noqa: PLC0415 - only when served

        console = Console(self.service, reports=options.reports, memory=options.memory)
        console.add_routes(router)
        return console

    async def _openapi(self, request: web.Request) -> web.Response:
        """GET /openapi.json: the native API's description (built when asked: rarely)."""
        from relaybaton.service._openapi import openapi_document  # noqa: PLC0415 - cycle

        return _json(openapi_document(title=self.service.flow_name))

    # --- listing ----------------------------------------------------------------------------

    async def list_conversations(self, request: web.Request) -> web.Response:
        """GET /v1/conversations: a page of conversations, newest activity first."""
        self.service._check_flow(request)
        query = listing_query(request)
        flow = request.query.get("flow")
        try:
            page = await self.page(query) if flow in {None, "", self.service.flow_name} else None
        except ConfigError as exc:
            raise ApiError(400, str(exc), code="invalid_query", param="cursor") from exc
        if page is None:
            return _json(ConversationList(object="list", data=[], next_cursor=None))
        return _json(
            ConversationList(
                object="list", data=self.items(page.heads), next_cursor=page.next_cursor
            )
        )

    def items(self, heads: list[Head]) -> list[ConversationItem]:
        """Listing rows: the stored head, with the live state of conversations in memory."""
        conversations = self.runtime.conversations
        items = []
        for head in heads:
            live = conversations.get(head.conversation_id)
            items.append(
                ConversationItem(
                    conversation_id=head.conversation_id,
                    flow=self.service.flow_name,
                    owner=live.owner if live is not None else head.owner,
                    epoch=live.epoch if live is not None else head.epoch,
                    status=str(live.status) if live is not None else head.status,
                    unfinished=live.unfinished if live is not None else head.unfinished,
                    updated_at=head.updated_at,
                    waiting_for_a_person=(
                        live.waiting_for_a_person
                        if live is not None
                        else head.status in {"awaiting_approval", "paused"}
                        or (head.owner or "").startswith("person:")
                    ),
                    cost_usd=round(live.usage_total().cost_usd, 10) if live is not None else None,
                )
            )
        return items

    async def page(self, query: HeadQuery) -> HeadPage:
        """One page of heads, from the store or, without one, from memory."""
        journal = self.runtime.conversations.journal
        if journal is not None:
            return await journal.store.list_heads(query)
        heads = [
            Head(
                conversation_id=c.id,
                seq=c.seq,
                epoch=c.epoch,
                owner=c.owner,
                status=str(c.status),
                unfinished=c.unfinished,
                updated_at=self.touched.get(c.id, 0.0),
            )
            for c in self.runtime.conversations.by_id.values()
        ]
        return select_heads(heads, query)

    # --- actions ----------------------------------------------------------------------------

    def _act(
        self, kind: type[T], action: Callable[[str, T], Awaitable[str | None]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        service = self.service

        async def handler(request: web.Request) -> web.Response:
            service._check_flow(request)
            from relaybaton.service._server import _conversation_id, decode_body  # noqa: PLC0415 - cycle

            conversation_id = _conversation_id(request)
            body = await read_body(request, service.limits.max_body_bytes)
            payload = decode_body(body, kind, service.limits)
            if self.runtime.conversation(conversation_id) is None:
                await self.runtime.conversations.load(conversation_id)
            if self.runtime.conversation(conversation_id) is None:
                raise ApiError(
                    404,
                    f"no conversation {conversation_id!r}",
                    code="conversation_not_found",
                    param="conversation_id",
                )
            try:
                target = await action(conversation_id, payload) or conversation_id
            except ConflictError as exc:
                raise ApiError(409, str(exc), code="conflict") from exc
            except OwnershipError as exc:
                raise ApiError(400, str(exc), code="refused") from exc
            except ConfigError as exc:  # a fork's choice: the message names the field first
                field_name = str(exc).partition(":")[0]
                param = field_name if field_name.startswith(("models.", "instructions.")) else None
                raise ApiError(400, str(exc), code="invalid_request", param=param) from exc
            conversation = self.runtime.conversation(target)
            assert conversation is not None
            return _json(operator_state(conversation), 201 if target != conversation_id else 200)

        return handler

    async def _pause(self, conversation_id: str, body: PauseIn) -> None:
        await self.operations.pause(conversation_id, caller(), reason=body.reason, epoch=body.epoch)

    async def _resume(self, conversation_id: str, body: ResumeIn) -> None:
        await self.operations.resume(conversation_id, caller(), epoch=body.epoch)

    async def _breakpoints(self, conversation_id: str, body: BreakpointsIn) -> None:
        await self.operations.set_breakpoints(
            conversation_id, caller(), body.breakpoints, epoch=body.epoch
        )

    async def _note(self, conversation_id: str, body: NoteIn) -> None:
        await self.operations.add_note(conversation_id, caller(), body.text, epoch=body.epoch)

    async def _take(self, conversation_id: str, body: BatonTakeIn) -> None:
        await self.operations.take_baton(conversation_id, caller(), epoch=body.epoch)

    async def _reply(self, conversation_id: str, body: BatonReplyIn) -> None:
        await self.operations.reply(conversation_id, caller(), body.text, epoch=body.epoch)

    async def _give(self, conversation_id: str, body: BatonGiveIn) -> None:
        await self.operations.give_baton(conversation_id, caller(), body.agent, epoch=body.epoch)

    async def _fork(self, conversation_id: str, body: ForkIn) -> str:
        fork = await self.operations.fork(
            conversation_id,
            caller(),
            upto=body.upto,
            new_id=body.conversation_id,
            owner=body.agent,
            models=body.models,
            instructions=body.instructions,
        )
        return fork.id
