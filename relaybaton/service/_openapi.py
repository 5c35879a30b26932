"""The OpenAPI 3.1 document of the native API, generated from the types that validate it.

Every request body below is the msgspec type its handler decodes with (``decode_body``), and
every answer the type it is encoded from or described by, so the document cannot drift from
what the server accepts; a test fuzzes every route against it (``tests/service/
test_openapi.py``). ``ROUTES`` lists the routes; a test checks that it names every route
the application registers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from relaybaton.runtime import TurnResult
from relaybaton.runtime._message_limits import CONVERSATION_ID
from relaybaton.service._api_types import (
    Accepted,
    ApprovalList,
    BatonGiveIn,
    BatonReplyIn,
    BatonTakeIn,
    BreakpointsIn,
    ConversationList,
    ConversationView,
    DecisionIn,
    DecisionOut,
    ForkIn,
    MessageIn,
    NoteIn,
    OperatorState,
    PauseIn,
    ResumeIn,
)
from relaybaton.service._errors import ErrorBody
from relaybaton.service._feedback import FeedbackIn, FeedbackOut
from relaybaton.service._openai_compat import ChatRequest

__all__ = ["ROUTES", "Route", "openapi_document"]


class Health(msgspec.Struct, kw_only=True):
    """The liveness probe's answer."""

    status: str


class Readiness(msgspec.Struct, kw_only=True):
    """The readiness probe's answer: each check, and the model each slot holds."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, bool]
    models: dict[str, str]


class Trace(msgspec.Struct, kw_only=True):
    """A conversation's spans, oldest first."""

    conversation_id: str
    spans: list[dict[str, Any]]


class ModelList(msgspec.Struct, kw_only=True):
    """The OpenAI-compatible model list: the served flow."""

    object: Literal["list"]
    data: list[dict[str, Any]]


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """One operation: its answers by status, beside the refusals every route may give."""

    method: str
    path: str
    summary: str
    body: Any = None
    answers: Mapping[int, Any]
    refusals: tuple[int, ...] = (400, 404)
    query: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    content_type: str = "application/json"


_CONVERSATION = "/v1/conversations/{conversation_id}"
_STATUS = "(active|awaiting_approval|paused|closed)"
_LISTING_QUERY: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "status",
        "comma-separated statuses",
        {"type": "string", "pattern": f"^({_STATUS}(,{_STATUS})*)?$"},
    ),
    ("owner", "an agent's name or person:NAME", {"type": "string"}),
    ("flow", "the flow's name (another flow's lists nothing)", {"type": "string"}),
    ("updated_after", "seconds since the epoch, inclusive", {"type": "number"}),
    ("updated_before", "seconds since the epoch, exclusive", {"type": "number"}),
    (
        "cursor",
        "the next_cursor of the previous page (none or empty: the first page)",
        {
            "type": "string",
            "pattern": r"^(-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?"
            r"~[A-Za-z0-9][A-Za-z0-9._:@-]{0,127})?$",
        },
    ),
    ("limit", "page size (50)", {"type": "integer", "minimum": 1, "maximum": 500}),
)

ROUTES: tuple[Route, ...] = (
    Route(method="get", path="/healthz", summary="Liveness", answers={200: Health}, refusals=()),
    Route(
        method="get",
        path="/readyz",
        summary="Readiness",
        answers={200: Readiness, 503: Readiness},
        refusals=(),
    ),
    Route(
        method="get",
        path="/metrics",
        summary="Prometheus metrics",
        answers={200: str},
        refusals=(),
        content_type="text/plain",
    ),
    Route(
        method="get",
        path="/openapi.json",
        summary="This document",
        answers={200: dict[str, Any]},
        refusals=(),
    ),
    Route(
        method="get",
        path="/v1/conversations",
        summary="List conversations, newest activity first, in pages",
        answers={200: ConversationList},
        refusals=(400,),
        query=_LISTING_QUERY,
    ),
    Route(
        method="post",
        path=f"{_CONVERSATION}/messages",
        summary="Send a user message (wait=false: answer 202 at once)",
        body=MessageIn,
        answers={200: TurnResult, 202: Accepted},
        refusals=(400, 409, 503),
        query=(
            (
                "wait",
                "false, 0 or no: answer 202 once accepted; anything else waits for the reply",
                {"type": "string"},
            ),
        ),
    ),
    Route(
        method="get",
        path=f"{_CONVERSATION}/events",
        summary="The conversation's events (Server-Sent Events)",
        answers={200: str},
        refusals=(400, 503),
        query=(
            (
                "last_event_id",
                "resume after this event id",
                {"type": "string", "pattern": "^[0-9]{1,18}$"},
            ),
        ),
        content_type="text/event-stream",
    ),
    Route(
        method="get",
        path=f"{_CONVERSATION}/trace",
        summary="The conversation's spans",
        answers={200: Trace},
    ),
    Route(
        method="get", path=_CONVERSATION, summary="A conversation", answers={200: ConversationView}
    ),
    Route(
        method="post",
        path=f"{_CONVERSATION}/pause",
        summary="Pause before the next model or tool call",
        body=PauseIn,
        answers={200: OperatorState},
        refusals=(400, 404, 409),
    ),
    Route(
        method="post",
        path=f"{_CONVERSATION}/resume",
        summary="Resume from where it halted",
        body=ResumeIn,
        answers={200: OperatorState},
        refusals=(400, 404, 409),
    ),
    Route(
        method="put",
        path=f"{_CONVERSATION}/breakpoints",
        summary="Halt before these tools or agents",
        body=BreakpointsIn,
        answers={200: OperatorState},
        refusals=(400, 404, 409),
    ),
    Route(
        method="post",
        path=f"{_CONVERSATION}/notes",
        summary="Leave a note the next model call sees",
        body=NoteIn,
        answers={200: OperatorState},
        refusals=(400, 404, 409),
    ),
    Route(
        method="post",
        path=f"{_CONVERSATION}/baton/take",
        summary="Take the baton as a person (a new epoch)",
        body=BatonTakeIn,
        answers={200: OperatorState},
        refusals=(400, 404, 409),
    ),
    Route(
        method="post",
        path=f"{_CONVERSATION}/baton/reply",
        summary="Answer the user as the person holding the baton",
        body=BatonReplyIn,
        answers={200: OperatorState},
        refusals=(400, 404, 409),
    ),
    Route(
        method="post",
        path=f"{_CONVERSATION}/baton/give",
        summary="Hand the baton to an agent",
        body=BatonGiveIn,
        answers={200: OperatorState},
        refusals=(400, 404, 409),
    ),
    Route(
        method="post",
        path=f"{_CONVERSATION}/fork",
        summary="Start a new conversation from a point in this one",
        body=ForkIn,
        answers={201: OperatorState},
        refusals=(400, 404, 409),
    ),
    Route(
        method="get",
        path="/v1/approvals",
        summary="Approvals waiting for a decision",
        answers={200: ApprovalList},
        refusals=(),
    ),
    Route(
        method="post",
        path="/v1/approvals/{approval_id}",
        summary="Decide on an approval",
        body=DecisionIn,
        answers={200: DecisionOut},
        refusals=(400, 404, 409),
    ),
    Route(
        method="post",
        path=f"{_CONVERSATION}/feedback",
        summary="Rate a conversation or one of its messages (1-5): a grade of the answer",
        body=FeedbackIn,
        answers={202: FeedbackOut},
    ),
    Route(
        method="get",
        path="/v1/quality",
        summary="Satisfaction, online grades and the declared thresholds, met or breached",
        answers={200: dict[str, Any]},
        refusals=(),
    ),
    Route(
        method="post",
        path="/v1/chat/completions",
        summary="OpenAI-compatible chat completions (the flow is the model)",
        body=ChatRequest,
        answers={200: dict[str, Any]},
        refusals=(400, 404, 409, 503),
    ),
    Route(
        method="get",
        path="/v1/models",
        summary="The served flow, as a model",
        answers={200: ModelList},
        refusals=(),
    ),
)

# Refusals of the edge, before any handler: a token (401, 403 for a flow it may not use
# or a remote client without one), a body too large (413), the rate and concurrency
# limits (429), a wrong method (405).
_EDGE_REFUSALS = (401, 403, 405, 413, 429)

_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted: the turn goes on",
    400: "The request is malformed; the error names the field",
    401: "No valid bearer token",
    403: "The token may not use this flow, or a remote client without a token",
    404: "No such conversation, approval or route",
    405: "Method not allowed",
    409: "The conversation changed since you looked; the message says what changed",
    413: "The body is too large",
    429: "Too many requests for this token",
    503: "Overloaded or shutting down; retry after Retry-After",
}


def openapi_document(*, title: str = "relaybaton", version: str = "0") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route in ``ROUTES``."""
    types: list[Any] = [ErrorBody]
    for route in ROUTES:
        if route.body is not None:
            types.append(route.body)
        types.extend(t for t in route.answers.values() if isinstance(t, type) and t is not str)
    unique = list(dict.fromkeys(types))
    schemas, components = msgspec.json.schema_components(
        unique, schema_hook=_any_value, ref_template="#/components/schemas/{name}"
    )
    by_type = dict(zip(unique, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route, by_type)
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{title} native API", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }


def _any_value(kind: Any) -> dict[str, Any]:
    """``object`` in a field's type means any JSON value (a schema with no constraint)."""
    if kind is object:
        return {"description": "any JSON value"}
    raise NotImplementedError(f"no JSON schema for {kind!r}")


def _schema(kind: Any, by_type: Mapping[Any, Any]) -> dict[str, Any]:
    if kind is str:
        return {"type": "string"}
    if kind in by_type:
        return dict(by_type[kind])
    return msgspec.json.schema(kind, schema_hook=_any_value)


def _operation(route: Route, by_type: Mapping[Any, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, kind in route.answers.items():
        responses[str(status)] = {
            "description": _DESCRIPTIONS.get(status, "OK"),
            "content": {route.content_type: {"schema": _schema(kind, by_type)}},
        }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for status in sorted({*route.refusals, *_EDGE_REFUSALS}):
        responses.setdefault(str(status), {"description": _DESCRIPTIONS[status], "content": error})
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{route.method}_{route.path.strip('/').replace('/', '_')}".replace(
            "{", ""
        ).replace("}", ""),
        "responses": responses,
    }
    parameters: list[dict[str, Any]] = []
    if "{conversation_id}" in route.path:
        parameters.append(
            {
                "name": "conversation_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": f"^{CONVERSATION_ID.pattern}$"},
            }
        )
    if "{approval_id}" in route.path:
        parameters.append(
            {
                "name": "approval_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
            }
        )
    parameters.extend(
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": text,
            "schema": kind,
        }
        for name, text, kind in route.query
    )
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(route.body, by_type)}},
        }
    return operation
