"""The HTTP service: a native JSON API, an OpenAI-compatible endpoint, health and metrics.

``create_service`` wraps a running ``Runtime`` in an aiohttp application. Every request
passes one middleware that authenticates it, applies the per-token rate and concurrency
limits, turns refusals into ``{"error": {...}}`` answers with the right status, and counts
requests and refusals. Handlers only use the runtime's public API (``submit``,
``conversation``, ``conversations.subscribe``, ``slots``).

Backpressure: a user message is refused with 503 and ``Retry-After`` when its
conversation already has ``max_pending_per_conversation`` messages queued, or the runtime
has ``max_turns_in_flight`` turns unfinished, instead of queueing without bound. The check
and the ``submit`` that follows run with no await between them, so the bound holds exactly.

Draining (``Service.drain``): new user messages get 503, turns already accepted get up to
the deadline to finish (their waiting requests are answered), then event streams end.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, final

import msgspec
import structlog
from aiohttp import web

from relaybaton.actors import Paused, Runtime
from relaybaton.adapters import ImagePart
from relaybaton.errors import (
    ConflictError,
    FencedWriteError,
    OwnershipError,
    PartitionNotOwnedError,
)
from relaybaton.runtime import Conversation, TurnResult
from relaybaton.runtime._message_limits import CONVERSATION_ID, new_message_id
from relaybaton.service._api_types import DecisionIn, MessageIn
from relaybaton.service._approval_desk import ApprovalDesk
from relaybaton.service._auth import TokenTable, current_token
from relaybaton.service._errors import ApiError, error_json
from relaybaton.service._feedback import FeedbackDesk
from relaybaton.service._forwarding import RequestForwarder, forward
from relaybaton.service._images import images_in
from relaybaton.service._limits import ServiceLimits, TokenLimiter, check_depth, read_body
from relaybaton.service._operator_api import OperatorApi, caller
from relaybaton.service._paused import paused_body, settle
from relaybaton.service._prometheus import ServiceMetrics
from relaybaton.service._sse import EventHub, stream_events
from relaybaton.service._tracing import SpanExporter, Tracer
from relaybaton.service._waiting import WaitDeadlines, outcome_within
from relaybaton.service.console._options import ConsoleOptions

if TYPE_CHECKING:
    from relaybaton.service.console import Console

__all__ = ["ApprovalDesk", "ConsoleOptions", "Service", "create_service", "decode_body"]


_encoder = msgspec.json.Encoder()
_PARAM = re.compile(r"at `\$\.([^`]+)`|field `([^`]+)`")
# Routes that answer without a token: a load balancer's probes must not need one.
_PROBES = frozenset({"/healthz", "/readyz"})

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# The request bodies live with the answers in ``_api_types.py``: the OpenAPI document is
# generated from the same types.
_MessageIn = MessageIn
_DecisionIn = DecisionIn


def decode_body(body: bytes, kind: type[T], limits: ServiceLimits) -> T:
    """Decode a JSON request body as ``kind``, refusing bad JSON or types with a 400."""
    if not body.strip():
        raise ApiError(400, "request body is empty; send a JSON object", code="empty_body")
    check_depth(body, limits.max_depth)
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        found = _PARAM.search(str(exc))
        param = (found.group(1) or found.group(2)) if found else None
        raise ApiError(400, f"invalid request: {exc}", code="invalid_body", param=param) from exc
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from exc


def _json(
    data: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_encoder.encode(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


_NO = frozenset({"false", "0", "no"})  # ``?wait=`` values that mean do not wait


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _conversation_id(request: web.Request) -> str:
    value = request.match_info["conversation_id"]
    if not CONVERSATION_ID.fullmatch(value):  # the same rule at every edge
        raise ApiError(
            400,
            f"invalid conversation id {value[:60]!r}: use 1-128 letters, digits and . _ : @ -, "
            "starting with a letter or digit",
            code="invalid_conversation_id",
            param="conversation_id",
        )
    return value


@final
class Service:
    """One flow served over HTTP. Build with ``create_service``; serve ``app``."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        flow_name: str,
        tokens: TokenTable,
        limits: ServiceLimits,
        record_content: bool,
        approvals: ApprovalDesk | None,
        exporter: SpanExporter | None,
        console: ConsoleOptions | None = None,
        forwarder: RequestForwarder | None = None,
    ) -> None:
        self.runtime = runtime
        self.forwarder = forwarder
        self.console_options = console
        self.console: Console | None = None
        self.flow_name = flow_name
        self.tokens = tokens
        self.limits = limits
        self.approvals = approvals
        self.draining = False
        self.log = structlog.get_logger("relaybaton.service")
        self.hub = EventHub(
            runtime.conversations,
            replay_events=limits.replay_events,
            max_conversations=limits.max_replay_conversations,
        )
        self.metrics = ServiceMetrics(
            runtime,
            pending_approvals=(lambda: len(approvals.pending())) if approvals else lambda: 0,
        )
        self.tracer = Tracer(
            runtime,
            flow_name=flow_name,
            hub=self.hub,
            record_content=record_content,
            exporter=exporter,
        )
        self.limiter = TokenLimiter(
            rate_per_s=limits.rate_per_s, burst=limits.burst, max_concurrent=limits.max_concurrent
        )
        # The service's own waiters of accepted turns, with their conversations: drain waits
        # on them (not on those parked for a person), nothing polls.
        self.pending: dict[asyncio.Future[TurnResult], str] = {}
        self.deadlines = WaitDeadlines(limits.wait_timeout_s)
        self.app = self._build_app()

    # --- lifecycle --------------------------------------------------------------------------

    async def drain(self, timeout: float) -> bool:
        """Refuse new messages, wait up to ``timeout`` for accepted turns, end the streams.

        Returns whether every accepted turn finished in time. Cancelling it leaves the
        service draining.
        """
        self.draining = True
        finished = True
        if self.pending:
            self.log.info("draining", turns=len(self.pending), deadline_s=timeout)
            finished = await settle(self.runtime.conversations, self.pending, timeout)
        self.hub.end_streams()
        return finished

    def close(self) -> None:
        """Stop listening to the runtime (after ``drain``)."""
        self.hub.close()
        self.metrics.close()
        self.tracer.close()
        self.operator_api.close()

    # --- admission --------------------------------------------------------------------------

    def submit(  # noqa: PLR0917 - the edges pass what they read, in order
        self,
        conversation_id: str,
        text: str,
        message_id: str | None,
        api: str,
        images: Sequence[ImagePart] = (),
        schema: dict[str, Any] | None = None,  # the JSON Schema the answer must fit
    ) -> tuple[str, asyncio.Future[TurnResult]]:
        """Admit one user message (or refuse it with 503) and submit it to the runtime.

        Returns the message id (a new one when the client gave none) and the turn's future.
        """
        limits = self.limits
        if len(text) > limits.max_text_chars:
            raise ApiError(
                400,
                f"message text is {len(text)} characters; at most {limits.max_text_chars} "
                "are allowed",
                code="text_too_long",
                param="text",
            )
        conversations = self.runtime.conversations
        conversation = conversations.get(conversation_id)
        repeat = (
            message_id is not None and conversation is not None and message_id in conversation.seen
        )
        if not repeat:  # a repeat queues nothing, so backpressure does not apply to it
            if self.draining:
                raise ApiError(
                    503,
                    "the server is shutting down and accepts no new messages; retry on "
                    "another instance",
                    code="draining",
                    headers={"Retry-After": "5"},
                )
            in_flight = conversations.turns_accepted - conversations.turns_finished
            if in_flight >= limits.max_turns_in_flight:
                raise ApiError(
                    503,
                    f"the server has {in_flight} turns in progress, its limit; retry shortly",
                    code="overloaded",
                    headers={"Retry-After": "1"},
                )
            if conversation is not None and (
                len(conversation.inbox) >= limits.max_pending_per_conversation
            ):
                raise ApiError(
                    503,
                    f"conversation {conversation_id!r} has {len(conversation.inbox)} messages "
                    "waiting for its current turn, its limit; retry when it answers",
                    code="conversation_busy",
                    headers={"Retry-After": "1"},
                )
        if message_id is None:
            message_id = new_message_id()
        try:
            future = self.runtime.submit(
                conversation_id, text, message_id=message_id, images=images, answer_schema=schema
            )
        except OwnershipError as exc:
            raise ApiError(409, str(exc), code="conversation_closed") from exc
        self.metrics.count(self.metrics.messages_received, api)
        if not future.done():
            self.pending[future] = conversation_id
            future.add_done_callback(lambda done: self.pending.pop(done, None))
        return message_id, future

    # --- the app ----------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        # aiohttp's own bound is a backstop; read_body answers 413 in our shape first.
        app = web.Application(
            middlewares=[self._edge], client_max_size=self.limits.max_body_bytes + 1024
        )
        from relaybaton.service._openai_compat import OpenAICompat  # noqa: PLC0415 - cycle

        compat = OpenAICompat(self)

        self.operator_api = OperatorApi(self)
        router = app.router
        router.add_get("/healthz", self._healthz)
        router.add_get("/readyz", self._readyz)
        router.add_get("/metrics", self._metrics)
        router.add_post("/v1/conversations/{conversation_id}/messages", self._post_message)
        self.operator_api.add_routes(router)
        if self.console_options is not None:
            self.console = self.operator_api.mount_console(router, self.console_options)
        router.add_get("/v1/conversations/{conversation_id}/events", self._events)
        router.add_get("/v1/conversations/{conversation_id}/trace", self._trace)
        router.add_get("/v1/conversations/{conversation_id}", self._get_conversation)
        router.add_get("/v1/approvals", self._list_approvals)
        router.add_post("/v1/approvals/{approval_id}", self._decide_approval)
        router.add_post("/v1/chat/completions", compat.chat_completions)
        router.add_get("/v1/models", compat.list_models)
        self.feedback = FeedbackDesk(self, router)
        return app

    def _refused(self, exc: ApiError) -> web.Response:
        self.metrics.refusals.labels(exc.code).inc()
        return web.Response(
            body=error_json(exc.status, exc.message, code=exc.code, param=exc.param),
            status=exc.status,
            content_type="application/json",
            headers=exc.headers,
        )

    @web.middleware
    async def _edge(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = _route(request)
        status = 500
        principal: str | None = None
        try:
            console = self.console
            # The console's pages authenticate themselves (sessions, a login form).
            if request.path not in _PROBES and not (console and console.owns(request.path)):
                token = (
                    self.tokens.authenticate(request.headers.get("Authorization"), request.remote)
                    if console is None
                    else console.authenticate_api(request)  # a session may read too
                )
                current_token.set(token)
                label = token.label if token is not None else "loopback"
                self.limiter.enter(label)
                principal = label  # set only once a slot is held, so finally gives it back
            forwarded = None
            if self.forwarder is not None:
                forwarded = await forward(request, self.forwarder, self.limits.max_body_bytes)
            response = forwarded if forwarded is not None else await handler(request)
        except ApiError as exc:
            status = exc.status
            return self._refused(exc)
        except web.HTTPException as exc:  # aiohttp's own 404, 405, 413
            status = exc.status
            if status < 400:
                raise  # a redirect (the console's forms answer 303)
            self.metrics.refusals.labels(f"http_{exc.status}").inc()
            return web.Response(
                body=error_json(exc.status, exc.reason or "request refused", code=f"http_{status}"),
                status=exc.status,
                content_type="application/json",
                # A 405 names the methods the route has (RFC 9110 asks for it).
                headers={"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None,
            )
        except (PartitionNotOwnedError, FencedWriteError) as exc:  # a moved partition: retry
            status = 503
            self.log.info("request_not_owned", route=route, exc_info=exc)
            return self._refused(ApiError(503, str(exc), code="partition_moved", headers={
                "Retry-After": str(max(1, round(getattr(exc, "retry_after", 1.0))))}))  # fmt: skip
        except Exception as exc:
            # The client gets a clean 500; the traceback goes to the log, never to the body.
            self.log.exception("request_failed", route=route, error=repr(exc))
            return web.Response(
                body=error_json(500, "internal error; the server logged it", code="internal"),
                status=500,
                content_type="application/json",
            )
        else:
            status = response.status
            return response
        finally:
            if principal is not None:
                self.limiter.leave(principal)
            self.metrics.count_request(route, request.method, status, started)

    # --- probes and metrics -----------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        failure = self.runtime.system.failure
        slots = {name: slot.adapter.name for name, slot in self.runtime.slots.items()}
        checks = {
            "accepting": not self.draining,
            "runtime": failure is None,
            "store": True,  # the in-memory store; a durable store reports its own
            "adapters": bool(slots),
        }
        ready = all(checks.values())
        return _json(
            {"status": "ready" if ready else "not_ready", "checks": checks, "models": slots},
            status=200 if ready else 503,
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415

        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    # --- the native API ---------------------------------------------------------------------

    def _check_flow(self, request: web.Request) -> None:
        self.tokens.check_flow(current_token.get(), self.flow_name)

    async def _post_message(self, request: web.Request) -> web.Response:
        self._check_flow(request)
        conversation_id = _conversation_id(request)
        body = await read_body(request, self.limits.max_body_bytes)
        message = decode_body(body, _MessageIn, self.limits)
        images = images_in([i.url for i in message.images], "images")
        # A journaled conversation continues from its journal (after a restart, or on the
        # node that took its partition over), never restarts empty over it.
        await self.runtime.conversations.load(conversation_id)
        key = message.message_id or request.headers.get("Idempotency-Key", "")[:200] or None
        message_id, future = self.submit(conversation_id, message.text, key, "native", images)
        location = {"Location": f"/v1/conversations/{conversation_id}"}
        if request.query_string and request.query.get("wait", "true").lower() in _NO:
            return _json(_accepted(conversation_id, message_id), 202, location)
        # Our own wait: a client going away ends it, not the turn.
        outcome = await outcome_within(self.hub, conversation_id, future, self.deadlines)
        if isinstance(outcome, Paused):  # a person decides later: answer now
            return _json(paused_body(outcome, message_id), 202, location)
        if outcome is not None:
            return _json(outcome)
        return _json(_accepted(conversation_id, message_id), 202, location)

    async def _get_conversation(self, request: web.Request) -> web.Response:
        self._check_flow(request)
        conversation_id = _conversation_id(request)
        conversation = self.runtime.conversation(conversation_id)
        if conversation is None:
            raise _no_conversation(conversation_id)
        return _json(conversation_view(conversation))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        self._check_flow(request)
        conversation_id = _conversation_id(request)
        raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or "0"
        try:
            last_id = max(0, int(raw))
        except ValueError:
            raise ApiError(
                400,
                f"Last-Event-ID must be an event id (an integer), got {raw[:40]!r}",
                code="invalid_last_event_id",
                param="Last-Event-ID",
            ) from None
        if self.draining:
            raise ApiError(
                503, "the server is shutting down", code="draining", headers={"Retry-After": "5"}
            )
        self.metrics.event_streams.inc()
        try:
            return await stream_events(
                request,
                self.hub,
                conversation_id,
                last_id=last_id,
                keepalive_s=self.limits.keepalive_s,
            )
        finally:
            self.metrics.event_streams.dec()

    async def _trace(self, request: web.Request) -> web.Response:
        self._check_flow(request)
        conversation_id = _conversation_id(request)
        spans = self.tracer.trace(conversation_id)
        if not spans and self.runtime.conversation(conversation_id) is None:
            raise _no_conversation(conversation_id)
        return _json(
            {"conversation_id": conversation_id, "spans": [span.to_json() for span in spans]}
        )

    async def _list_approvals(self, request: web.Request) -> web.Response:
        self._check_flow(request)
        data = list(await self.approvals.listing()) if self.approvals is not None else []
        return _json({"object": "list", "data": data})

    async def _decide_approval(self, request: web.Request) -> web.Response:
        self._check_flow(request)
        approval_id = request.match_info["approval_id"]
        body = await read_body(request, self.limits.max_body_bytes)
        decision = decode_body(body, _DecisionIn, self.limits)
        if self.approvals is None:
            raise ApiError(
                404,
                f"no pending approval {approval_id[:60]!r}: this server has no approval store",
                code="approval_not_found",
                param="approval_id",
            )
        try:
            outcome = await self.approvals.decide(
                approval_id,
                decision.decision,
                arguments=decision.arguments,
                reason=decision.reason,
                arguments_hash=decision.arguments_hash,
                by=caller(),
            )
        except ConflictError as exc:
            raise ApiError(409, str(exc), code="approval_conflict") from exc
        except LookupError as exc:
            raise ApiError(
                404, f"no pending approval {approval_id[:60]!r}: {exc}", code="approval_not_found"
            ) from exc
        return _json(outcome)


def _accepted(conversation_id: str, message_id: str) -> dict[str, object]:
    return {
        "conversation_id": conversation_id,
        "message_id": message_id,
        "status": "accepted",
        "conversation": f"/v1/conversations/{conversation_id}",
        "events": f"/v1/conversations/{conversation_id}/events",
    }


def _no_conversation(conversation_id: str) -> ApiError:
    return ApiError(
        404,
        f"no conversation {conversation_id!r}; post a message to "
        f"/v1/conversations/{conversation_id}/messages to start it",
        code="conversation_not_found",
        param="conversation_id",
    )


def conversation_view(conversation: Conversation) -> dict[str, object]:
    """A conversation as the API shows it: owner, epoch, status, transcript, usage."""
    by_model = [
        {
            "agent": agent,
            "model": model,
            "calls": entry.calls,
            "input_tokens": entry.input_tokens,
            "output_tokens": entry.output_tokens,
            "cost_usd": round(entry.cost_usd, 10),
        }
        for (agent, model), entry in conversation.ledger.items()
    ]
    by_agent = {
        agent: {
            "calls": entry.calls,
            "input_tokens": entry.input_tokens,
            "output_tokens": entry.output_tokens,
            "cost_usd": round(entry.cost_usd, 10),
        }
        for agent, entry in conversation.usage_by_agent().items()
    }
    return {
        "conversation_id": conversation.id,
        "owner": conversation.owner,
        "epoch": conversation.epoch,
        "status": str(conversation.status),
        "handoff_in_flight": conversation.in_flight is not None,
        "pending_messages": len(conversation.inbox),
        "transcript": conversation.transcript,
        "ownership": conversation.ownership,
        "usage": {"by_agent": by_agent, "by_agent_and_model": by_model},
    }


def create_service(
    runtime: Runtime,
    *,
    flow_name: str,
    tokens: TokenTable | None = None,
    limits: ServiceLimits | None = None,
    record_content: bool = False,
    approvals: ApprovalDesk | None = None,
    exporter: SpanExporter | None = None,
    console: ConsoleOptions | None = None,
    forwarder: RequestForwarder | None = None,
) -> Service:
    """Serve ``runtime`` (one flow) over HTTP; call ``Service.close`` when done.

    Args:
        runtime: a runtime open for the service's lifetime.
        flow_name: the flow's name: the "model" of the OpenAI-compatible endpoint.
        tokens: the bearer tokens; none means loopback clients only.
        limits: body, rate, concurrency and backpressure bounds.
        record_content: put message content in spans (off by default).
        approvals: where approvals are listed and decided, when there is a store.
        exporter: where finished spans go besides the in-memory ring (OTLP).
        console: serve the console at ``/`` with these options (None: the API only).
        forwarder: answers requests about conversations another node owns (a cluster
            node's); None serves every conversation here.
    """
    return Service(
        runtime,
        flow_name=flow_name,
        tokens=tokens or TokenTable(),
        limits=limits or ServiceLimits(),
        record_content=record_content,
        approvals=approvals,
        exporter=exporter,
        console=console,
        forwarder=forwarder,
    )
