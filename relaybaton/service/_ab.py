"""A/B of whole flow versions: two services behind one front, split by conversation.

``FlowSplit`` puts two ``Service``s (variant A, the incumbent flow, and B, the candidate)
behind one aiohttp application. A request about a conversation goes to the variant that
holds it; a new conversation gets its arm from a ``Rollout`` (the one model rollouts use):
sticky per conversation, a share of new conversations that grows stage by stage, and
automatic promotion or rollback by the same rules — errors, p95 latency, and quality, fed
by the variants' online grades and users' ratings. After a promotion every new conversation
goes to B; after a rollback to A. Requests about no conversation (metrics, approvals, the
OpenAI-compatible endpoint) go to A. ``GET /v1/ab`` reports the split and each variant's
grades, satisfaction, cost, p95 and errors.

The front hands a request to the chosen variant's application whole (its auth, limits and
error shapes apply unchanged) through ``Application._handle``, aiohttp's own entry point
for a request; a test covers it, so a change there fails loudly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import final

import msgspec
import structlog
from aiohttp import web

from relaybaton.actors import ModelCallEvent
from relaybaton.actors.routing import Rollout, RolloutPolicy
from relaybaton.evals import Grade
from relaybaton.runtime.messages import ReplyEvent
from relaybaton.service._server import Service

__all__ = ["FlowSplit"]

_log = structlog.get_logger("relaybaton.service")
_CONVERSATION = re.compile(r"^/v1/conversations/([^/]+)")
_encoder = msgspec.json.Encoder()


@final
class FlowSplit:
    """Two flow versions served as one; see the module docstring."""

    def __init__(
        self,
        a: Service,
        b: Service,
        *,
        names: tuple[str, str] = ("A", "B"),
        policy: RolloutPolicy | None = None,
    ) -> None:
        self.services = {names[0]: a, names[1]: b}
        self.names = names
        self.clock = a.runtime.flow.clock
        self.rollout = Rollout(names[0], names[1], policy=policy, start=self.clock.now())
        self.decisions: list[dict[str, object]] = []
        self._unsubscribe: list[Callable[[], None]] = []
        # The report is one of A's routes, behind A's auth and limits.
        a.app.router.add_get("/v1/ab", self._report)
        for name, service in self.services.items():
            self._unsubscribe.append(
                service.runtime.conversations.subscribe(
                    self._listener(name), (ModelCallEvent, ReplyEvent)
                )
            )
            service.feedback.listeners.append(self._rating(name))
            service.app.freeze()  # served through the front, never by a runner of its own
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    def close(self) -> None:
        """Stop reading the variants' events."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    def watch_grades(self, name: str) -> None:
        """Feed variant ``name``'s online grades into the analysis (once grading runs)."""
        online = self.services[name].feedback.watch.online
        if online is not None:
            online.listeners.append(self._graded(name))

    # --- routing ------------------------------------------------------------------------

    def variant_of(self, conversation_id: str) -> str:
        """The variant that serves this conversation (the one that holds it, if any)."""
        for name, service in self.services.items():
            if service.runtime.conversation(conversation_id) is not None:
                return name
        return self.rollout.arm(conversation_id)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        match = _CONVERSATION.match(request.path)
        name = self.variant_of(match.group(1)) if match else self.names[0]
        return await self.services[name].app._handle(
            request
        )  # aiohttp's entry point: see the docstring

    # --- the analysis -------------------------------------------------------------------

    def _decided(self, action: str | None) -> None:
        if action is None:
            return
        rollout = self.rollout
        decision = {"at": self.clock.now(), "action": action, "reason": rollout.reason,
                    "share": rollout.share}  # fmt: skip
        self.decisions.append(decision)
        _log.info("flow_ab", **decision)

    def _listener(self, name: str) -> Callable[[str, msgspec.Struct], None]:
        def on_event(_conversation_id: str, event: msgspec.Struct) -> None:
            now = self.clock.now()
            if isinstance(event, ModelCallEvent):
                ok = event.outcome == "ok"
                self._decided(self.rollout.record(name, now, event.latency_s, ok=ok))
            elif isinstance(event, ReplyEvent) and event.error is not None:
                self._decided(self.rollout.record(name, now, 0.0, ok=False))

        return on_event

    def _rating(self, name: str) -> Callable[[str, str, float], None]:
        def on_rating(_conversation_id: str, _agent: str, utility: float) -> None:
            self._decided(self.rollout.grade(name, self.clock.now(), utility))

        return on_rating

    def _graded(self, name: str) -> Callable[[str, str, tuple[Grade, ...]], None]:
        def on_grades(_conversation_id: str, _agent: str, grades: tuple[Grade, ...]) -> None:
            utility = sum(g.score for g in grades) / len(grades)
            self._decided(self.rollout.grade(name, self.clock.now(), utility))

        return on_grades

    # --- the report ---------------------------------------------------------------------

    def report(self) -> dict[str, object]:
        """The split and each variant's figures."""
        rollout = self.rollout
        variants: dict[str, object] = {}
        for name, service in self.services.items():
            window = rollout.arms[name]
            quality = service.feedback.watch.report()
            conversations = service.runtime.conversations
            variants[name] = {
                "flow": service.flow_name,
                "conversations": len(conversations.by_id),
                "turns": conversations.turns_finished,
                "calls_in_stage": window.count,
                "errors_in_stage": window.errors,
                "mean_grade_in_stage": window.utility,
                "satisfaction": quality["satisfaction"],
                "figures": quality["figures"],
                "online_grading": quality["online_grading"],
                "cost_usd": sum(c.usage_total().cost_usd for c in conversations.by_id.values()),
            }
        return {
            "state": rollout.state.value,
            "share_b": rollout.share,
            "stages": list(rollout.stages),
            "reason": rollout.reason,
            "decisions": self.decisions,
            "variants": variants,
        }

    async def _report(self, _request: web.Request) -> web.Response:
        return web.Response(body=_encoder.encode(self.report()), content_type="application/json")
