"""The simulated model: the embedded default, for examples, demos and benchmarks.

It behaves like a cooperative model with no network and no keys:

- it hands off when a handoff tool matches the user's words (a refund question goes to the
  refund agent, a billing question to billing);
- it calls the tools whose names and descriptions match the request, all at once (so a
  synthesizer asks its experts in parallel), with arguments drawn from the user's text to
  fit each tool's JSON Schema (numbers, order ids, the request itself);
- once its tools answered, it answers from their results, or from the ``Knowledge:`` lines
  of its instructions;
- with memory tools (``memory_*``), it remembers what a user says they prefer ("I prefer
  email", "please contact me by phone") as an observation of the entity ``customer`` (created
  first), and recalls it when asked ("what are my preferences?"); memory tools are used
  for nothing else.

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
from typing import final

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
from relaybaton.errors import ConfigError, ModelOverloadedError
from relaybaton.runtime import Clock, MonotonicClock

__all__ = ["SimulatedModel"]

_WORD = re.compile(r"[a-z][a-z0-9]+")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)")
_DOLLARS = re.compile(r"\$\s?(\d+(?:[.,]\d+)?)")
_ORDER_ID = re.compile(r"\b([A-Z]{1,4}-?\d{3,})\b")
_FINAL = ("publish_", "release_", "send_", "submit_")
_SECURITY = re.compile(r"cwe-\d+|vulnerab|injection|arbitrary code|insecure", re.IGNORECASE)
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "this",
        "that",
        "from",
        "your",
        "you",
        "are",
        "was",
        "were",
        "have",
        "has",
        "had",
        "not",
        "but",
        "can",
        "into",
        "about",
        "what",
        "when",
        "which",
        "who",
        "why",
        "how",
        "our",
        "out",
        "any",
        "all",
        "please",
        "need",
        "want",
        "would",
        "could",
        "should",
        "agent",
        "agents",
        "transfer",
        "hand",
        "handoff",
        "conversation",
        "question",
        "questions",
        "ask",
        "tool",
        "tools",
    ]
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _keywords(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP}


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
        results = [m for m in since if isinstance(m, ToolResultMessage)]
        wanted = _keywords(user_text)
        remembered = _memory_step(request.tools, user_text, since, bool(mine))
        if remembered is not None:
            return self._respond(remembered)
        if not mine:
            handoffs = [t for t in request.tools if t.name.startswith("transfer_to_")]
            best = self._best_match(handoffs, wanted)
            if best is not None:
                return self._call(request, [best], user_text, "handoff")
            tools = [
                t
                for t in request.tools
                if not t.name.startswith(("transfer_to_", "memory_", *_FINAL))
            ]
            relevant = [t for t in tools if _keywords(f"{t.name} {t.description}") & wanted]
            if relevant and request.tool_choice != "none":
                return self._call(request, relevant, user_text, "call")
        called = {c.name for m in mine for c in m.tool_calls}
        finals = [t for t in request.tools if t.name.startswith(_FINAL) and t.name not in called]
        if finals and results and request.tool_choice != "none":
            # Gathering done: a final action (publish, release, send) wraps the findings up.
            summary = self._answer(request.instructions, user_text, results)
            return self._call(request, finals[:1], summary, "final", results)
        return AssistantMessage(text=self._answer(request.instructions, user_text, results))

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

    @staticmethod
    def _best_match(tools: Sequence[ToolSpec], wanted: set[str]) -> ToolSpec | None:
        scored = [
            (len(_keywords(f"{t.name.replace('_', ' ')} {t.description}") & wanted), t)
            for t in tools
        ]
        scored = [(s, t) for s, t in scored if s > 0]
        if not scored:
            return None
        return max(scored, key=lambda pair: pair[0])[1]

    def _call(
        self,
        request: ModelRequest,
        tools: Sequence[ToolSpec],
        user_text: str,
        purpose: str,
        results: Sequence[ToolResultMessage] = (),
    ) -> AssistantMessage:
        # Ids unique within a conversation, as providers' are, and the same on a rerun.
        where = f"{request.metadata.conversation_id}\x00{len(request.messages)}"
        calls = tuple(
            ToolCall(
                id=f"call_{hashlib.sha256(f'{where}{i}'.encode()).hexdigest()[:12]}",
                name=tool.name,
                arguments=msgspec.json.encode(
                    _arguments(tool, user_text, purpose, results)
                ).decode(),
            )
            for i, tool in enumerate(tools)
        )
        return AssistantMessage(tool_calls=calls)

    @staticmethod
    def _answer(instructions: str, user_text: str, results: Sequence[ToolResultMessage]) -> str:
        done = [r for r in results if not r.is_error and not r.content.startswith("Transferred")]
        if done:
            return " ".join(f"[{r.name.replace('_', ' ')}] {r.content}" for r in done)
        knowledge = [
            line.split(":", 1)[1].strip()
            for line in instructions.splitlines()
            if line.strip().lower().startswith("knowledge:")
        ]
        if knowledge:
            wanted = _keywords(user_text)
            ranked = sorted(knowledge, key=lambda k: -len(_keywords(k) & wanted))
            return ranked[0]
        snippet = user_text if len(user_text) <= 80 else user_text[:77] + "..."
        return f"Thanks for your message ({snippet!r}); I have looked into it and can help."


def _text(message: ChatMessage) -> str:
    if isinstance(message, ToolResultMessage):
        return message.content
    if isinstance(message, AssistantMessage):
        return message.text + "".join(c.arguments for c in message.tool_calls)
    return message.text


def _arguments(
    tool: ToolSpec, user_text: str, purpose: str, results: Sequence[ToolResultMessage] = ()
) -> dict[str, object]:
    """Fill a tool's JSON Schema from the user's words (and, for a final action, results)."""
    properties = tool.parameters.get("properties")
    required_value = tool.parameters.get("required", [])
    required = required_value if isinstance(required_value, list) else []
    if not isinstance(properties, Mapping):
        return {}
    order_ids = _ORDER_ID.findall(user_text)
    # Amounts first ($42), then other numbers; digits inside an order id are not amounts.
    rest = _ORDER_ID.sub(" ", user_text)
    dollars = [float(n.replace(",", "")) for n in _DOLLARS.findall(rest)]
    numbers = dollars or [float(n.replace(",", "")) for n in _NUMBER.findall(rest)]
    arguments: dict[str, object] = {}
    for name, schema in properties.items():
        if not isinstance(schema, Mapping):
            continue
        kind = schema.get("type")
        if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
            arguments[name] = schema["enum"][0]
        elif kind in ("number", "integer") and "finding" in name.lower():
            # How many of the gathered results raise a security problem.
            arguments[name] = sum(1 for r in results if _SECURITY.search(r.content))
        elif kind in ("number", "integer"):
            if not numbers:
                if name in required:
                    arguments[name] = 0
                continue
            value = numbers.pop(0)
            arguments[name] = int(value) if kind == "integer" else value
        elif kind == "boolean":
            arguments[name] = True
        elif kind == "string":
            if "id" in name.lower() and order_ids:
                arguments[name] = order_ids.pop(0)
            elif name == "reason" and purpose == "handoff":
                arguments[name] = f"the customer asks: {user_text[:120]}"
            else:
                arguments[name] = user_text
        elif name in required:
            arguments[name] = None
    return arguments


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
