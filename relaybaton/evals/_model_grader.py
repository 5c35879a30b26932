"""The model-graded grader: a model slot judges a sample against a rubric.

The judge is asked to call one tool, ``record_grade``, with a ``score`` (0 to ``scale``) or
a ``label`` (one of ``labels``, each worth a score) and a ``reason``; a judge that answers in
text instead is read for ``score: N`` or ``label: NAME``. The call goes straight to the
slot's adapter, not through the slot, so judging is not counted as the flow's own traffic
(it would otherwise move the supervisor's windows and a rollout's analysis). On the
simulated models it runs offline and deterministically (they are seeded); with a key it
runs on the real model of the slot.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import final

import structlog

from relaybaton.adapters import (
    ModelAdapter,
    ModelRequest,
    ToolSpec,
    UserMessage,
)
from relaybaton.errors import ConfigError, ModelError
from relaybaton.evals._grade import Grade, Sample

__all__ = ["ModelGrader"]

_log = structlog.get_logger("relaybaton.evals")

_SCORE = re.compile(r"score\s*[:=]\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_LABEL = re.compile(r"label\s*[:=]\s*([A-Za-z0-9_-]+)", re.IGNORECASE)


def _transcript(sample: Sample) -> str:
    lines: list[str] = []
    for turn in sample.trace.turns:
        lines.append(f"USER: {turn.user}")
        lines.extend(
            f"ASSISTANT ({agent}): {text}"
            for agent, text in zip(turn.agents, turn.replies, strict=False)
        )
        if turn.error:
            lines.append(f"ERROR: {turn.error}")
    expected = sample.item.expected
    if expected is not None:
        shown = expected if isinstance(expected, str) else json.dumps(expected)
        lines.append(f"EXPECTED: {shown}")
    return "\n".join(lines)


@final
class ModelGrader:
    """A judge on a model slot with a rubric; passes at ``threshold``."""

    needs_expected = False

    def __init__(
        self,
        name: str,
        *,
        slot: str,
        rubric: str,
        judge: Callable[[], ModelAdapter],
        labels: Mapping[str, float] | None = None,
        scale: float = 1.0,
        threshold: float = 0.5,
    ) -> None:
        if not rubric.strip():
            raise ConfigError(f"grader {name!r}: `rubric` is empty; say what a good answer is")
        if scale <= 0:
            raise ConfigError(f"grader {name!r}: `scale` must be > 0, got {scale}")
        for label, value in (labels or {}).items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"grader {name!r}: labels.{label} must be within 0..1")
        self.name = name
        self.slot = slot
        self.rubric = rubric
        self.labels = dict(labels or {})
        self.scale = scale
        self.threshold = threshold
        self._judge = judge

    def _tool(self) -> ToolSpec:
        properties: dict[str, object] = {"reason": {"type": "string"}}
        if self.labels:
            properties["label"] = {"type": "string", "enum": sorted(self.labels)}
        else:
            properties["score"] = {"type": "number", "minimum": 0, "maximum": self.scale}
        return ToolSpec(
            name="record_grade",
            description="Record the grade of the conversation under the rubric.",
            parameters={
                "type": "object",
                "properties": properties,
                "required": [*([k for k in ("label", "score") if k in properties]), "reason"],
            },
        )

    def _request(self, sample: Sample) -> ModelRequest:
        scale = (
            f"a label among {', '.join(sorted(self.labels))}"
            if self.labels
            else f"a score from 0 to {self.scale:g}"
        )
        return ModelRequest(
            instructions=(
                "You grade a conversation between a user and an assistant.\n"
                f"Rubric: {self.rubric}\n"
                f"Call record_grade with {scale} and a one-sentence reason."
            ),
            messages=(UserMessage(text=_transcript(sample)),),
            tools=(self._tool(),),
            tool_choice="record_grade",
            temperature=0.0,
        )

    async def grade(self, sample: Sample) -> Grade:
        try:
            response = await self._judge().complete(self._request(sample))
        except ModelError as exc:
            _log.warning("judge_failed", grader=self.name, slot=self.slot, exc_info=exc)
            return self._verdict(0.0, f"the judge on slot {self.slot!r} failed: {exc}")
        message = response.message
        fields: dict[str, object] = {}
        for call in message.tool_calls:
            if call.name == "record_grade":
                try:
                    decoded = json.loads(call.arguments or "{}")
                except json.JSONDecodeError:
                    decoded = {}
                if isinstance(decoded, dict):
                    fields = decoded
                break
        text = message.text
        reason = str(fields.get("reason") or text or "").strip()[:300]
        if self.labels:
            label = fields.get("label")
            if not isinstance(label, str):
                found = _LABEL.search(text)
                label = found.group(1) if found else None
            if label not in self.labels:
                return self._verdict(0.0, f"the judge gave no known label ({label!r}): {reason}")
            return self._verdict(self.labels[label], f"label {label}: {reason}")
        raw = fields.get("score")
        if not isinstance(raw, int | float) or isinstance(raw, bool):
            found = _SCORE.search(text)
            raw = float(found.group(1)) if found else None
        if raw is None:
            return self._verdict(0.0, f"the judge gave no score: {reason or text[:120]!r}")
        score = min(1.0, max(0.0, float(raw) / self.scale))
        return self._verdict(score, f"score {float(raw):g}/{self.scale:g}: {reason}")

    def _verdict(self, score: float, reason: str) -> Grade:
        return Grade(
            grader=self.name,
            score=score,
            passed=score >= self.threshold,
            reason=reason,
            threshold=self.threshold,
        )
