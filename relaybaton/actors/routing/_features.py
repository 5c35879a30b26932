"""Task features: what a router needs to know about a call before it picks a model.

``TaskFeatures`` is a small frozen record (complexity 0–10, whether the call needs vision or
tools, a domain label, the expected token count, and two signs of arithmetic: quantities
written as words and the size of the largest number). ``HeuristicClassifier`` derives it from the
request's text in a few microseconds; ``SlotClassifier`` asks a model through a slot instead,
for flows that would rather pay a cheap call than guess. Both satisfy ``Classifier``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, final

import msgspec
import structlog

from relaybaton.adapters import ModelRequest, ToolResultMessage, UserMessage
from relaybaton.errors import ModelError

if TYPE_CHECKING:
    from relaybaton.actors.routing._slot import ModelSlot

__all__ = [
    "Classifier",
    "HeuristicClassifier",
    "SlotClassifier",
    "TaskFeatures",
    "request_text",
]

# A failed classification falls back to the heuristic and is counted in ``failures``.
_log = structlog.get_logger("relaybaton.routing")


class TaskFeatures(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What the router knows about one call.

    Attributes:
        complexity: 0 (a greeting) to 10 (a multi-step proof); rules compare against it.
        needs_vision: the request carries an image.
        needs_tools: the request offers tools, so the model must be able to call them.
        domain: a label such as ``billing`` or ``math`` (``general`` when nothing matched).
        expected_tokens: input tokens plus the expected answer; the context must hold it.
        number_words: quantities written as words (three, twice, half, a dozen); in a word
            problem each tends to be a relation the answer must work through.
        magnitude: digits in the integer part of the largest number the text holds.
        cost: the call's expected price in whole US cents (rounded up), from
            ``expected_tokens`` and the prices of the slot's model; the router fills it in
            when a rule reads it (``cost > 5``), since only it knows the prices.
    """

    complexity: int = 0
    needs_vision: bool = False
    needs_tools: bool = False
    domain: str = "general"
    expected_tokens: int = 0
    number_words: int = 0
    magnitude: int = 0
    cost: int = 0


class Classifier(Protocol):
    """Derives ``TaskFeatures`` from a request; must not raise on odd input."""

    def classify(self, request: ModelRequest) -> TaskFeatures:
        """Return the request's features."""
        ...


# Words that mark harder work: multi-step reasoning, proofs, code, arithmetic.
_HARD = re.compile(
    r"\b(why|prove|proof|derive|explain|step|calculate|compute|analy[sz]e|compare|design|"
    r"optimi[sz]e|debug|algorithm|integral|equation|theorem|estimate|plan|trade-?offs?)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_WORD = re.compile(r"[a-z]{3,}")
# Cardinals, multiples and fractions: on graded word problems these marked the hard ones
# better than digit counts did ("twice as many", "a third of", "half the rest"). A set
# looked up per word, not a regex alternation: a fifth of the time on a 300-character prompt.
_NUMBER_WORDS = frozenset({
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "twenty", "thirty", "forty", "fifty", "hundred", "hundreds", "thousand",
    "thousands", "million", "millions", "half", "halves", "twice", "double", "triple", "third",
    "thirds", "quarter", "quarters", "dozen", "dozens",
})  # fmt: skip
_INTEGER_PART = re.compile(r"\d[\d,]*")

DEFAULT_DOMAINS: Mapping[str, frozenset[str]] = {
    "billing": frozenset({"invoice", "charge", "charged", "payment", "receipt", "billing", "card"}),
    "refund": frozenset({"refund", "return", "damaged", "money", "broken"}),
    "code": frozenset({"code", "function", "python", "bug", "compile", "stack", "traceback"}),
    "math": frozenset({"sum", "total", "percent", "equation", "calculate", "how", "many"}),
    "legal": frozenset({"contract", "law", "legal", "liability", "court", "clause"}),
    "medical": frozenset({"patient", "symptom", "dose", "diagnosis", "disease", "clinical"}),
}


def request_text(request: ModelRequest) -> str:
    """The text of the last user message (what the call is about), or ''."""
    for message in reversed(request.messages):
        if isinstance(message, UserMessage):
            return message.text
    return ""


@final
class HeuristicClassifier:
    """A fast, model-free classifier: word and number counts, keyword domains.

    Complexity grows with the log of the prompt's length, with words that mark reasoning
    and with how many numbers it holds (arithmetic), so a one-line greeting scores 0–1 and
    a long multi-step word problem 7–9.
    """

    def __init__(
        self,
        *,
        domains: Mapping[str, frozenset[str]] | None = None,
        expected_output_tokens: int = 256,
    ) -> None:
        self.domains = dict(DEFAULT_DOMAINS if domains is None else domains)
        self.expected_output_tokens = expected_output_tokens

    def classify(self, request: ModelRequest) -> TaskFeatures:
        """Return the request's features from its text alone."""
        text = request_text(request)
        words = _WORD.findall(text.lower())
        vision = any(isinstance(m, UserMessage) and m.images for m in request.messages)
        history = len(request.instructions) + sum(
            len(m.content) if isinstance(m, ToolResultMessage) else len(m.text)
            for m in request.messages
        )
        return TaskFeatures(
            complexity=self.complexity(text),
            needs_vision=vision,
            needs_tools=bool(request.tools),
            domain=self._domain_of(set(words)),
            expected_tokens=history // 4 + (request.max_output_tokens or 0)
            or history // 4 + self.expected_output_tokens,
            number_words=_count_number_words(words),
            magnitude=self.magnitude(text),
        )

    @staticmethod
    def complexity(text: str) -> int:
        """Score ``text`` from 0 to 10."""
        if not text:
            return 0
        length = math.log2(1 + len(text) / 40)  # 40 chars → 1, 640 → 4, 5000 → 7
        hard = min(3, len(_HARD.findall(text)))
        numbers = min(2, len(_NUMBER.findall(text)) // 3)
        return max(0, min(10, round(length + hard + numbers)))

    @staticmethod
    def number_words(text: str) -> int:
        """How many quantities ``text`` writes as words (three, twice, half, dozens)."""
        return _count_number_words(_WORD.findall(text.lower()))

    @staticmethod
    def magnitude(text: str) -> int:
        """Digits in the integer part of the largest number in ``text`` (0 if none)."""
        return max((len(n) - n.count(",") for n in _INTEGER_PART.findall(text)), default=0)

    def domain(self, text: str) -> str:
        """The domain whose keywords the text uses most; ``general`` if none."""
        return self._domain_of(set(_WORD.findall(text.lower())))

    def _domain_of(self, words: set[str]) -> str:
        best, best_hits = "general", 0
        for name, keywords in self.domains.items():
            hits = len(words & keywords)
            if hits > best_hits:
                best, best_hits = name, hits
        return best


def _count_number_words(words: list[str]) -> int:
    return sum(1 for word in words if word in _NUMBER_WORDS)


class _Verdict(msgspec.Struct, kw_only=True):
    complexity: int = 0
    domain: str = "general"


_VERDICT_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "complexity": {"type": "integer", "minimum": 0, "maximum": 10},
        "domain": {"type": "string"},
    },
    "required": ["complexity", "domain"],
}

_INSTRUCTIONS = (
    "Rate the user's request. Answer only with JSON: "
    '{"complexity": 0-10 (0 greeting, 3 lookup, 7 multi-step reasoning, 10 research), '
    '"domain": one word}.'
)


@final
class SlotClassifier:
    """Asks a (cheap) model through a slot for complexity and domain.

    ``classify`` stays synchronous for the router's sake: it returns the heuristic's answer
    and the model's verdict is used through ``aclassify``, which the slot awaits when the
    classifier has one. A failed or unreadable model answer falls back to the heuristic,
    so classification never fails a call.
    """

    def __init__(self, slot: ModelSlot, *, fallback: HeuristicClassifier | None = None) -> None:
        self.slot = slot
        self.fallback = fallback or HeuristicClassifier()
        self.failures = 0

    def classify(self, request: ModelRequest) -> TaskFeatures:
        """The heuristic's features (see ``aclassify`` for the model's)."""
        return self.fallback.classify(request)

    async def aclassify(self, request: ModelRequest) -> TaskFeatures:
        """Ask the model; on any model error or bad answer use the heuristic."""
        base = self.fallback.classify(request)
        probe = ModelRequest(
            instructions=_INSTRUCTIONS,
            messages=(UserMessage(text=request_text(request)[:4000]),),
            response_format=_VERDICT_SCHEMA,
            max_output_tokens=40,
            metadata=request.metadata,
        )
        try:
            response = await self.slot.call(probe, agent="classifier")
            verdict = msgspec.json.decode(response.message.text, type=_Verdict)
        except (ModelError, msgspec.DecodeError) as exc:
            self.failures += 1
            _log.info("classifier_failed", fallback="heuristic", exc_info=exc)
            return base
        return msgspec.structs.replace(
            base, complexity=max(0, min(10, verdict.complexity)), domain=verdict.domain or "general"
        )
