"""The console: server-rendered pages over the service, live through a small script.

``relaybaton serve`` serves it at ``/``. Pages are built on the server from the same parts
the API uses (the listing, ``Operations``, the approval desk, the event hub) and escaped
there; one static script keeps each page fresh (the conversation page follows its SSE
stream, lists poll) and makes the timeline interactive. Nothing is loaded from elsewhere.

Safety: every answer carries a Content-Security-Policy that allows scripts and styles from
this server only (no inline script); a login with an API token sets an HttpOnly,
SameSite=Strict cookie; every form that changes state carries the session's CSRF token;
without tokens configured only loopback clients get a session. Console routes do their own
authentication (a session, or a redirect to the login form); the API accepts a session
cookie for reads only.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

import structlog
from aiohttp import web

from relaybaton.errors import ConfigError, ConflictError, OwnershipError
from relaybaton.memory._store import GraphStore
from relaybaton.runtime._operator import person
from relaybaton.service._api_types import ConversationItem
from relaybaton.service._auth import ApiToken
from relaybaton.service._errors import ApiError
from relaybaton.service._operator_api import operator_state
from relaybaton.service.console._html import SECURITY_HEADERS, Html, html, page
from relaybaton.service.console._journal_trace import trace_from_journal
from relaybaton.service.console._more_pages import (
    evaluations_fragment,
    memory_fragment,
    supervisor_fragment,
)
from relaybaton.service.console._pages import (
    approvals_fragment,
    conversation_fragment,
    conversations_fragment,
    problem,
)
from relaybaton.service.console._sessions import Session, Sessions
from relaybaton.service.console._timeline import lane_css

if TYPE_CHECKING:
    from relaybaton.service._server import Service

__all__ = ["Console"]

_log = structlog.get_logger("relaybaton.console")
_STATIC = Path(__file__).parent / "static"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOGIN_COOKIE = "rb_login"
_FORM: web.RequestKey[Any] = web.RequestKey("relaybaton_console_form", object)
_PAGE_PREFIXES = ("/conversations/", "/approvals/", "/console/")
_PAGES = frozenset(
    {
        "/",
        "/approvals",
        "/supervisor",
        "/memory",
        "/evaluations",
        "/login",
        "/logout",
        "/favicon.ico",
    }
)

Page = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


@final
class Console:
    """The console's routes and its side of authentication."""

    def __init__(
        self,
        service: Service,
        *,
        reports: Path | None = None,
        memory: GraphStore | None = None,
    ) -> None:
        self.service = service
        self.runtime = service.runtime
        self.sessions = Sessions(service.tokens)
        self.reports = reports
        self.memory = memory
        self._static = {
            "console.js": ((_STATIC / "console.js").read_bytes(), "text/javascript"),
            "console.css": (
                (_STATIC / "console.css").read_bytes() + lane_css().encode(),
                "text/css",
            ),
        }

    # --- the edge ---------------------------------------------------------------------------

    @staticmethod
    def owns(path: str) -> bool:
        """Whether the console answers ``path`` (and authenticates it itself)."""
        return path in _PAGES or path.startswith(_PAGE_PREFIXES)

    def authenticate_api(self, request: web.Request) -> ApiToken | None:
        """The API caller's token: the bearer token, or a session's for reads only."""
        header = request.headers.get("Authorization")
        session = self.sessions.of(request) if header is None else None
        if session is None:
            return self.service.tokens.authenticate(header, request.remote)
        if request.method not in _SAFE_METHODS:
            raise ApiError(
                403,
                "a console session may only read the API; send a bearer token to change "
                "anything, or use the console's forms",
                code="session_read_only",
            )
        return session.token

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the pages, forms and static files."""
        router.add_get("/", self._page(self._conversations))
        router.add_get("/console/fragments/conversations", self._page(self._conversations_live))
        router.add_get("/conversations/{conversation_id}", self._page(self._conversation))
        router.add_get(
            "/conversations/{conversation_id}/fragment", self._page(self._conversation_live)
        )
        router.add_post(
            "/conversations/{conversation_id}/{action}", self._page(self._act, form=True)
        )
        router.add_get("/approvals", self._page(self._approvals))
        router.add_get("/console/fragments/approvals", self._page(self._approvals_live))
        router.add_post("/approvals/{approval_id}", self._page(self._decide, form=True))
        router.add_get("/supervisor", self._page(self._supervisor))
        router.add_get("/memory", self._page(self._memory))
        router.add_get("/evaluations", self._page(self._evaluations))
        router.add_get("/login", self._login_form)
        router.add_post("/login", self._login)
        router.add_post("/logout", self._page(self._logout, form=True))
        router.add_get("/console/static/{name}", self._static_file)
        router.add_get("/favicon.ico", self._no_icon)

    def _page(
        self, handler: Page, *, form: bool = False
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            session = self.sessions.of(request)
            fresh = False
            if session is None:
                session = self.sessions.open_loopback(request)
                fresh = session is not None
            if session is None:
                if form or request.path.startswith("/console/fragments/"):
                    raise ApiError(401, "log in first: /login", code="login_required")
                raise web.HTTPSeeOther("/login")
            try:
                if form:
                    data = await request.post()
                    self.sessions.check_csrf(session, _field(data, "csrf"))
                    request[_FORM] = data
                response = await handler(request, session)
            except ApiError as exc:
                if request.path.startswith("/console/fragments/"):
                    raise
                body = problem(exc.message, status=exc.status)
                response = self._whole("Refused", body, session, status=exc.status)
            if fresh:
                self.sessions.set_cookie(response, session)
            return response

        return run

    def respond(self, body: Html, *, status: int = 200) -> web.Response:
        """An HTML answer with the console's security headers."""
        return web.Response(
            text=body,
            status=status,
            content_type="text/html",
            charset="utf-8",
            headers=SECURITY_HEADERS,
        )

    def _whole(
        self,
        title: str,
        body: Html,
        session: Session,
        *,
        live: str = "",
        current: str = "",
        status: int = 200,
    ) -> web.Response:
        return self.respond(
            page(
                title,
                html('<div id="live">{}</div>', body),
                flow=self.service.flow_name,
                csrf=session.csrf,
                who=person(session.who),
                live=live,
                current=current,
            ),
            status=status,
        )

    # --- conversations ----------------------------------------------------------------------

    async def _list_items(self, request: web.Request) -> tuple[list[ConversationItem], str | None]:
        from relaybaton.service._operator_api import listing_query  # noqa: PLC0415 - cycle

        api = self.service.operator_api
        try:
            query = listing_query(request)
            heads = await api.page(query)
        except ConfigError as exc:
            raise ApiError(400, str(exc), code="invalid_query", param="cursor") from exc
        return api.items(heads.heads), heads.next_cursor

    async def _conversations(self, request: web.Request, session: Session) -> web.StreamResponse:
        items, cursor = await self._list_items(request)
        live = "/console/fragments/conversations" + (
            f"?{request.query_string}" if request.query_string else ""
        )
        return self._whole(
            "Conversations", conversations_fragment(items, cursor), session, live=live, current="/"
        )

    async def _conversations_live(
        self, request: web.Request, session: Session
    ) -> web.StreamResponse:
        items, cursor = await self._list_items(request)
        return self.respond(conversations_fragment(items, cursor))

    async def _conversation_body(self, conversation_id: str, session: Session) -> Html:
        from relaybaton.service._server import _no_conversation  # noqa: PLC0415 - cycle

        await self.runtime.conversations.load(conversation_id)
        conversation = self.runtime.conversation(conversation_id)
        if conversation is None:
            raise _no_conversation(conversation_id)
        log = self.service.hub.logs.get(conversation_id)
        events = [(e.id, e.event) for e in log.events] if log is not None else []
        dropped = events[0][0] - 1 if events else 0
        source = ""
        journal = self.runtime.conversations.journal
        if not events and journal is not None:
            # Nothing since the server started: what the journal holds since its snapshot.
            events = trace_from_journal(journal.decode(await journal.store.read(conversation_id)))
            source = "Rebuilt from the journal: latencies and routing reasons are not journaled."
        return conversation_fragment(
            conversation,
            operator_state(conversation),
            self._agents(),
            events,
            dropped=dropped,
            csrf=session.csrf,
            source=source,
        )

    def _agents(self) -> list[str]:
        entry = self.runtime.conversations.entry
        return [entry, *(a for a in self.runtime.agents if a != entry)]

    async def _conversation(self, request: web.Request, session: Session) -> web.StreamResponse:
        cid = _conversation_id(request)
        body = await self._conversation_body(cid, session)
        return self._whole(
            f"Conversation {cid}", body, session, live=f"/conversations/{cid}/fragment"
        )

    async def _conversation_live(
        self, request: web.Request, session: Session
    ) -> web.StreamResponse:
        return self.respond(await self._conversation_body(_conversation_id(request), session))

    async def _act(self, request: web.Request, session: Session) -> web.StreamResponse:
        cid = _conversation_id(request)
        action = request.match_info["action"]
        data = request[_FORM]
        who = person(session.who)
        ops = self.service.operator_api.operations
        try:
            epoch = _epoch(data)
            match action:
                case "pause":
                    await ops.pause(cid, who, epoch=epoch)
                case "resume":
                    await ops.resume(cid, who, epoch=epoch)
                case "note":
                    await ops.add_note(cid, who, _required(data, "text"), epoch=epoch)
                case "breakpoints":
                    points = (_field(data, "breakpoints") or "").split()
                    await ops.set_breakpoints(cid, who, points, epoch=epoch)
                case "take":
                    await ops.take_baton(cid, who, epoch=_needed(epoch))
                case "reply":
                    await ops.reply(cid, who, _required(data, "text"), epoch=_needed(epoch))
                case "give":
                    await ops.give_baton(cid, who, _required(data, "agent"), epoch=_needed(epoch))
                case "fork":
                    fork = await ops.fork(cid, who, upto=int(_required(data, "upto")))
                    raise web.HTTPSeeOther(f"/conversations/{fork.id}")
                case _:
                    raise ApiError(404, f"no action {action!r}", code="no_such_action")
        except ConflictError as exc:
            return await self._refused(cid, session, str(exc), 409)
        except (OwnershipError, ValueError) as exc:
            return await self._refused(cid, session, str(exc), 400)
        raise web.HTTPSeeOther(f"/conversations/{cid}")

    async def _refused(self, cid: str, session: Session, message: str, status: int) -> web.Response:
        body = await self._conversation_body(cid, session)
        return self._whole(
            f"Conversation {cid}",
            html("{}{}", problem(message, status=status), body),
            session,
            live="",
            status=status,
        )

    # --- approvals --------------------------------------------------------------------------

    def _inbox(self, session: Session) -> Html:
        desk = self.service.approvals
        if desk is None:
            return html(
                '<p class="empty">This server has no approval store: start it with --store.</p>'
            )
        pending = list(desk.pending())
        context: dict[str, str] = {}
        for request in pending:
            cid = str(request.get("conversation_id", ""))
            conversation = self.runtime.conversation(cid)
            if conversation is not None:
                texts = [
                    getattr(i, "text", "")
                    for i in conversation.transcript
                    if type(i).__name__ == "UserMessage"
                ]
                context[cid] = f"the user said: {texts[-1]}" if texts else ""
        return approvals_fragment(pending, context, session.csrf)

    async def _approvals(self, request: web.Request, session: Session) -> web.StreamResponse:
        return self._whole(
            "Approvals",
            self._inbox(session),
            session,
            live="/console/fragments/approvals",
            current="/approvals",
        )

    async def _approvals_live(self, request: web.Request, session: Session) -> web.StreamResponse:
        return self.respond(self._inbox(session))

    async def _decide(self, request: web.Request, session: Session) -> web.StreamResponse:
        approval_id = request.match_info["approval_id"]
        data = request[_FORM]
        decision = _field(data, "decision") or ""
        desk = self.service.approvals
        if desk is None or decision not in {"approve", "reject", "edit"}:
            message = f"cannot decide {approval_id!r}: no approval store, or no decision given"
            body = html("{}{}", problem(message, status=404), self._inbox(session))
            return self._whole("Approvals", body, session, status=404)
        arguments = None
        if decision == "edit":
            try:
                arguments = json.loads(_field(data, "arguments") or "")
            except ValueError as exc:
                arguments = exc
            if not isinstance(arguments, dict):
                message = 'the edited arguments must be a JSON object, like {"amount": 90}'
                body = html("{}{}", problem(message, status=400), self._inbox(session))
                return self._whole("Approvals", body, session, status=400)
        try:
            await desk.decide(
                approval_id,
                decision,
                arguments=arguments,
                reason=_field(data, "reason") or "",
                arguments_hash=_field(data, "arguments_hash") or None,
                by=person(session.who),
            )
        except ConflictError as exc:
            return self._whole(
                "Approvals",
                html("{}{}", problem(str(exc), status=409), self._inbox(session)),
                session,
                status=409,
            )
        except LookupError as exc:
            message = f"no pending approval {approval_id!r}: {exc}"
            return self._whole(
                "Approvals",
                html("{}{}", problem(message, status=404), self._inbox(session)),
                session,
                status=404,
            )
        raise web.HTTPSeeOther("/approvals")

    # --- supervisor, memory, evaluations ----------------------------------------------------

    async def _supervisor(self, request: web.Request, session: Session) -> web.StreamResponse:
        return self._whole(
            "Supervisor",
            supervisor_fragment(self.runtime.slots),
            session,
            current="/supervisor",
        )

    async def _memory(self, request: web.Request, session: Session) -> web.StreamResponse:
        user = request.query.get("user", "")[:200]
        query = request.query.get("q", "")[:500]
        body = await memory_fragment(self.memory, user, query)
        return self._whole("Memory", body, session, current="/memory")

    async def _evaluations(self, request: web.Request, session: Session) -> web.StreamResponse:
        return self._whole(
            "Evaluations", evaluations_fragment(self.reports), session, current="/evaluations"
        )

    # --- login ------------------------------------------------------------------------------

    async def _login_form(
        self, request: web.Request, message: str = "", status: int = 200
    ) -> web.StreamResponse:
        nonce = secrets.token_urlsafe(24)
        note = (
            "This server has no API tokens configured: it answers loopback clients only, and"
            " they need no login."
            if self.service.tokens.open_to_loopback_only
            else "Log in with one of the server's API tokens."
        )
        body = html(
            '{}<p>{}</p><form method="post" action="/login" class="login"><input type="hidden"'
            ' name="nonce" value="{}">'
            '<label>API token <input type="password" name="token" autocomplete="off"'
            " required></label>"
            '<button type="submit">Log in</button></form>',
            problem(message, status=status) if message else Html(""),
            note,
            nonce,
        )
        response = self.respond(page("Log in", body, flow=self.service.flow_name), status=status)
        # Login CSRF: the form's nonce must come back with this cookie (double submit).
        response.set_cookie(
            _LOGIN_COOKIE, nonce, httponly=True, samesite="Strict", path="/login", max_age=900
        )
        return response

    async def _login(self, request: web.Request) -> web.StreamResponse:
        data = await request.post()
        nonce = _field(data, "nonce")
        if not nonce or nonce != request.cookies.get(_LOGIN_COOKIE):
            return await self._login_form(request, "the login form expired; try again", 403)
        try:
            session = self.sessions.login(_field(data, "token") or "", request)
        except ApiError as exc:
            _log.info("console_login_refused", status=exc.status, code=exc.code)
            return await self._login_form(request, exc.message, exc.status)
        response = web.HTTPSeeOther("/")
        self.sessions.set_cookie(response, session)
        response.del_cookie(_LOGIN_COOKIE, path="/login")
        raise response

    async def _logout(self, request: web.Request, session: Session) -> web.StreamResponse:
        self.sessions.logout(session)
        response = web.HTTPSeeOther("/login")
        response.del_cookie("rb_session", path="/")
        raise response

    async def _no_icon(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204, headers=SECURITY_HEADERS)

    async def _static_file(self, request: web.Request) -> web.StreamResponse:
        found = self._static.get(request.match_info["name"])
        if found is None:
            raise ApiError(404, "no such file", code="not_found")
        body, kind = found
        return web.Response(
            body=body,
            content_type=kind,
            headers={**SECURITY_HEADERS, "Cache-Control": "max-age=300"},
        )


def _field(data: Any, name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) else None


def _required(data: Any, name: str) -> str:
    value = _field(data, name)
    if not value:
        raise ValueError(f"the form needs {name!r}")
    return value


def _epoch(data: Any) -> int | None:
    raw = _field(data, "epoch")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ValueError(f"epoch must be a whole number, got {raw[:20]!r}")
    return int(raw)


def _needed(epoch: int | None) -> int:
    if epoch is None:
        raise ValueError("the form needs the epoch you saw")
    return epoch


def _conversation_id(request: web.Request) -> str:
    from relaybaton.service._server import _conversation_id as checked  # noqa: PLC0415 - cycle

    return checked(request)
