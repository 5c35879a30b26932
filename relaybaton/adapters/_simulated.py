"""The simulated model: the embedded default, for examples, demos and benchmarks.

It behaves like a sensible agent with no network and no keys (``_simulated_agent.py``
says how): it hands off when a handoff's description fits, answers greetings, looks things
up before it acts and stops when a lookup fails, fills tool arguments from the conversation
by their schema and description, answers in sentences (using its ``Knowledge:`` lines),
and answers JSON fitting a requested schema. With memory tools (``memory_*``), it
remembers what a user says they prefer ("I prefer email") as an observation of the entity
``customer`` (created first), and recalls it when asked ("what are my preferences?").

Latency is lognormal around ``latency_p50_s`` (slept on the injected clock), failures come
at ``error_rate`` as retryable overload errors, and usage is priced per 1K tokens. Everything
is seeded, so a run can be repeated exactly.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, final

import msgspec

from relaybaton.adapters._chat import (
    AssistantMessage,
    ChatMessage,
    ModelRequest,
    ModelResponse,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    Usage,
    UserMessage,
)
from relaybaton.adapters._protocol import Capabilities
from relaybaton.adapters._simulated_agent import (
    arguments_for,
    compose_answer,
    greeting_reply,
    plan,
    structured_answer,
    wants_handoff,
)
from relaybaton.errors import ConfigError, ModelOverloadedError
from relaybaton.runtime import Clock, MonotonicClock

__all__ = ["SimulatedModel"]


def _episode(messages: Sequence[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """The last user message's text and everything after it."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, UserMessage):
            return message.text, list(messages[index + 1 :])
    return "", list(messages)


@final
class SimulatedModel:
    """A seeded stand-in for a hosted model; see the module docstring for its behaviour."""

    def __init__(
        self,
        name: str = "simulated:general",
        *,
        latency_p50_s: float = 0.05,
        latency_sigma: float = 0.4,
        error_rate: float = 0.0,
        price_in_per_1k: float = 0.0005,
        price_out_per_1k: float = 0.0015,
        capabilities: Capabilities | None = None,
        seed: int = 0,
        clock: Clock | None = None,
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ConfigError(f"error_rate must be within [0, 1], got {error_rate}")
        self._name = name if ":" in name else f"simulated:{name}"
        self.latency_p50_s = latency_p50_s
        self.latency_sigma = latency_sigma
        self.error_rate = error_rate
        self.price_in_per_1k = price_in_per_1k
        self.price_out_per_1k = price_out_per_1k
        self._capabilities = capabilities or Capabilities()
        self._random = random.Random(seed)
        self._clock = clock or MonotonicClock()
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self.latency_p50_s > 0:
            latency = self.latency_p50_s * math.exp(self._random.gauss(0.0, self.latency_sigma))
            await self._clock.sleep(latency)
        if self.error_rate and self._random.random() < self.error_rate:
            raise ModelOverloadedError(
                f"{self._name} is overloaded (simulated, error rate {self.error_rate:.1%})",
                provider="simulated",
                status=503,
            )
        message = self._behave(request)
        input_tokens = max(
            1,
            (len(request.instructions) + sum(len(_text(m)) for m in request.messages)) // 4
            + 20 * len(request.tools),
        )
        output_tokens = max(
            1, (len(message.text) + sum(len(c.arguments) + 8 for c in message.tool_calls)) // 4
        )
        cost = (input_tokens * self.price_in_per_1k + output_tokens * self.price_out_per_1k) / 1000
        return ModelResponse(
            message=message,
            usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost),
            model=self._name,
            finish_reason="tool_calls" if message.tool_calls else "stop",
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        response = await self.complete(request)
        words = response.message.text.split(" ")
        for index, word in enumerate(words):
            yield TextDelta(text=word if index == 0 else f" {word}")
        yield StreamDone(response=response)

    async def aclose(self) -> None:
        return None

    # --- behaviour --------------------------------------------------------------------------

    def _behave(self, request: ModelRequest) -> AssistantMessage:
        user_text, since = _episode(request.messages)
        agent = request.metadata.agent
        mine = [m for m in since if isinstance(m, AssistantMessage) and m.agent == agent]
        my_calls = {c.id for m in mine for c in m.tool_calls}
        results = [m for m in since if isinstance(m, ToolResultMessage) and m.call_id in my_calls]
        remembered = _memory_step(request.tools, user_text, since, bool(mine))
        if remembered is not None:
            return self._respond(remembered)
        schema = _schema_of(request.response_format)
        if schema is not None:
            answer = structured_answer(schema, request.instructions, user_text)
            return AssistantMessage(text=msgspec.json.encode(answer).decode())
        handoffs = [t for t in request.tools if t.name.startswith("transfer_to_")]
        if not mine:
            greeting = greeting_reply(user_text, handoffs)
            # A front-line agent (it hands off) greets; one that only knows things answers.
            knows = "knowledge:" in request.instructions.lower()
            if greeting is not None and (handoffs or not knows):
                return AssistantMessage(text=greeting)
            chosen = wants_handoff(handoffs, user_text)
            if chosen is not None:
                return self._call(request, [chosen], user_text, "handoff")
        tools = [t for t in request.tools if not t.name.startswith(("transfer_to_", "memory_"))]
        if request.tool_choice != "none":
            called = {c.name for m in mine for c in m.tool_calls}
            following = plan(tools, user_text, request.instructions, called, results)
            if following:
                return self._call(request, following, user_text, "call", results)
        return AssistantMessage(
            text=compose_answer(request.instructions, user_text, results, request.tools)
        )

    def _respond(self, step: str | tuple[str, dict[str, object]]) -> AssistantMessage:
        if isinstance(step, str):
            return AssistantMessage(text=step)
        name, arguments = step
        call = ToolCall(
            id=f"call_{self._random.getrandbits(48):012x}",
            name=name,
            arguments=msgspec.json.encode(arguments).decode(),
        )
        return AssistantMessage(tool_calls=(call,))

    def _call(
        self,
        request: ModelRequest,
        tools: Sequence[ToolSpec],
        user_text: str,
        purpose: str,
        results: Sequence[ToolResultMessage] = (),
    ) -> AssistantMessage:
        report = (
            compose_answer(request.instructions, user_text, results, request.tools)
            if results
            else ""
        )
        # Ids unique within a conversation, as providers' are, and the same on a rerun.
        where = f"{request.metadata.conversation_id}\x00{len(request.messages)}"
        calls = tuple(
            ToolCall(
                id=f"call_{hashlib.sha256(f'{where}{i}'.encode()).hexdigest()[:12]}",
                name=tool.name,
                arguments=msgspec.json.encode(
                    arguments_for(tool, user_text, results, purpose, report)
                ).decode(),
            )
            for i, tool in enumerate(tools)
        )
        return AssistantMessage(tool_calls=calls)


def _text(message: ChatMessage) -> str:
    if isinstance(message, ToolResultMessage):
        return message.content
    if isinstance(message, AssistantMessage):
        return message.text + "".join(c.arguments for c in message.tool_calls)
    return message.text


def _schema_of(response_format: Mapping[str, object] | None) -> Mapping[str, Any] | None:
    """The JSON Schema the request asks the answer to fit, if any (``response_format`` is the
    bare schema, as every adapter reads it)."""
    return response_format or None


# --- memory -----------------------------------------------------------------------------

_STATED = re.compile(
    r"\b(?:i(?:'d| would)? (?:prefer|like to be contacted)|please (?:contact|reach|call|email"
    r"|text) me|contact me by)\b[^.!?\n]*",
    re.IGNORECASE,
)
_ASKED = re.compile(
    r"\b(?:my preferences?|what do you (?:know|remember)|do you remember|how (?:should|do|will)"
    r" you contact me)\b",
    re.IGNORECASE,
)
_CUSTOMER = "customer"


def _memory_step(
    tools: Sequence[ToolSpec], user_text: str, since: Sequence[ChatMessage], acted: bool
) -> str | tuple[str, dict[str, object]] | None:
    """The next step with memory tools: a call (name, arguments), an answer, or None."""
    names = {t.name for t in tools}
    done = {m.name: m for m in since if isinstance(m, ToolResultMessage)}
    recall = next((n for n in ("memory_open_nodes", "memory_search_nodes") if n in names), None)
    if recall is not None and _ASKED.search(user_text):
        result = done.get(recall)
        if result is None:
            if acted:
                return None
            if recall == "memory_open_nodes":
                return recall, {"names": [_CUSTOMER]}
            return recall, {"query": _CUSTOMER}
        return _recalled(result)
    stated = _STATED.search(user_text)
    if stated and {"memory_create_entities", "memory_add_observations"} <= names:
        preference = stated.group(0).strip()
        if "memory_create_entities" not in done:
            if acted:
                return None
            entity = {"name": _CUSTOMER, "entityType": "customer", "observations": []}
            return "memory_create_entities", {"entities": [entity]}
        if "memory_add_observations" not in done:
            addition = {"entityName": _CUSTOMER, "contents": [preference]}
            return "memory_add_observations", {"observations": [addition]}
        return f"Noted. I will remember that: {preference}."
    return None


def _recalled(result: ToolResultMessage) -> str:
    if result.is_error:
        return f"I could not look up your preferences ({result.content})."
    try:
        graph = msgspec.json.decode(result.content)
    except msgspec.DecodeError:
        graph = {}
    entities = graph.get("entities", []) if isinstance(graph, dict) else []
    remembered = [
        o
        for e in entities
        if isinstance(e, dict) and e.get("name") == _CUSTOMER
        for o in e.get("observations", [])
    ]
    if not remembered:
        return "I have no saved preferences for you yet."
    return "From our earlier conversations I remember: " + "; ".join(remembered) + "."
