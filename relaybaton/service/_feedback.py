"""``POST /v1/conversations/{id}/feedback`` and ``GET /v1/quality``.

A rating (1-5, with an optional comment and the id of the message it rates) is journaled
as the conversation's ``Feedback`` record (when the runtime has a store), becomes a grade of
the answer — utility ``(rating - 1) / 4`` — handed to the slot of the agent that answered
(the metrics stream, the supervisor's utility rule, a rollout's quality gate), and counts in
the satisfaction metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, final

import msgspec
import structlog
from aiohttp import web

from relaybaton.runtime import Conversation, Feedback
from relaybaton.runtime.messages import ReplyEvent
from relaybaton.service._auth import current_token
from relaybaton.service._errors import ApiError
from relaybaton.service._limits import read_body
from relaybaton.service._quality import QualityWatch

if TYPE_CHECKING:
    from relaybaton.service._server import Service

__all__ = ["FeedbackDesk", "FeedbackIn", "FeedbackOut", "rating_utility"]

_log = structlog.get_logger("relaybaton.service")
_encoder = msgspec.json.Encoder()


class FeedbackIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A user's rating of a conversation (or of one message of it)."""

    rating: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    message_id: str = ""


class FeedbackOut(msgspec.Struct, kw_only=True):
    """What a rating became: the grade (utility) of the agent that answered."""

    conversation_id: str
    rating: int
    utility: float
    agent: str
    journaled: bool


def rating_utility(rating: int) -> float:
    """A rating of 1-5 as a utility in 0..1."""
    return (rating - 1) / 4


def _answering_agent(conversation: Conversation, answered: Mapping[str, str]) -> str:
    """The agent that answered last (seen live, or in the kept trace), else the owner."""
    agent = answered.get(conversation.id)
    if agent:
        return agent
    for event in reversed(conversation.events or ()):
        if isinstance(event, ReplyEvent):
            return event.agent
    return conversation.owner or ""


@final
class FeedbackDesk:
    """The feedback and quality routes of one service."""

    def __init__(self, service: Service, router: web.UrlDispatcher) -> None:
        self.service = service
        self.watch = QualityWatch(service.runtime)
        service.metrics.registry.register(self.watch)
        # It stops reading the runtime when the metrics do (``Service.close``).
        service.metrics._detach.append(self.watch.close)
        router.add_post("/v1/conversations/{conversation_id}/feedback", self.post_feedback)
        router.add_get("/v1/quality", self.get_quality)
        # Told of every rating as (conversation, agent, utility): an A/B split's analysis.
        self.listeners: list[Callable[[str, str, float], None]] = []

    async def post_feedback(self, request: web.Request) -> web.Response:
        from relaybaton.service._server import _conversation_id, decode_body  # noqa: PLC0415

        service = self.service
        service.tokens.check_flow(current_token.get(), service.flow_name)
        conversation_id = _conversation_id(request)
        body = await read_body(request, service.limits.max_body_bytes)
        feedback = decode_body(body, FeedbackIn, service.limits)
        # The rating's range and the comment's length are checked by decoding (FeedbackIn).
        runtime = service.runtime
        conversation = runtime.conversation(conversation_id)
        if conversation is None:
            raise ApiError(
                404, f"no conversation {conversation_id!r}", code="conversation_not_found",
                param="conversation_id",
            )  # fmt: skip
        if feedback.message_id and feedback.message_id not in conversation.seen:
            raise ApiError(
                404, f"conversation {conversation_id!r} has no message "
                f"{feedback.message_id[:60]!r}",
                code="message_not_found", param="message_id",
            )  # fmt: skip
        agent = _answering_agent(conversation, self.watch.answered)
        record = Feedback(
            rating=feedback.rating, comment=feedback.comment, message_id=feedback.message_id,
            agent=agent,
        )  # fmt: skip
        journal = runtime.conversations.journal
        if journal is not None:
            journal.record(conversation, record)
            await journal.flush()  # acknowledged once durable, like an accepted message
        utility = rating_utility(feedback.rating)
        deployed = runtime.agents.get(agent)
        if deployed is not None:
            runtime.slots[deployed.model].grade(conversation_id, utility, agent=agent)
        self.watch.rate(feedback.rating)
        for listener in self.listeners:
            listener(conversation_id, agent, utility)
        _log.info("feedback", conversation=conversation_id, rating=feedback.rating, agent=agent)
        return web.Response(
            body=_encoder.encode(
                FeedbackOut(
                    conversation_id=conversation_id,
                    rating=feedback.rating,
                    utility=utility,
                    agent=agent,
                    journaled=journal is not None,
                )
            ),
            status=202,
            content_type="application/json",
        )

    async def get_quality(self, _request: web.Request) -> web.Response:
        self.service.tokens.check_flow(current_token.get(), self.service.flow_name)
        return web.Response(
            body=_encoder.encode(self.watch.report()), content_type="application/json"
        )
