"""Graders of a reply's words: string checks, text similarity and JSON-schema checks.

Similarity comes from well-kept libraries, not code of ours: the fuzzy ratio from
rapidfuzz (normalised Indel similarity), BLEU from sacrebleu (sentence BLEU, the score
divided by 100), ROUGE from rouge-score (the F-measure of ``rouge1``, ``rouge2`` or
``rougeL``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, final

import jsonschema
from rapidfuzz import fuzz
from rouge_score import rouge_scorer
from sacrebleu.metrics.bleu import BLEU

from relaybaton.errors import ConfigError
from relaybaton.evals._grade import Grade, Sample

__all__ = ["JsonSchemaGrader", "SimilarityGrader", "StringGrader"]

STRING_CHECKS = ("equals", "contains", "not_contains", "regex")
SIMILARITIES = ("fuzzy", "bleu", "rouge1", "rouge2", "rougeL")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Reference:
    """Where the text to compare with comes from: a fixed value or an item's expectation."""

    value: str | None
    expected: str | None  # the name of an expected value; "" for the whole expected string

    def of(self, sample: Sample) -> str | None:
        if self.value is not None:
            return self.value
        found = sample.item.expected_value(self.expected or None)
        return found if isinstance(found, str) else None

    @property
    def needs_expected(self) -> bool:
        return self.value is None


def _missing(name: str, threshold: float, reference: _Reference) -> Grade:
    key = f" named {reference.expected!r}" if reference.expected else ""
    return Grade(
        grader=name,
        score=0.0,
        passed=False,
        reason=f"the item has no expected string{key} to compare with",
        threshold=threshold,
    )


@final
class StringGrader:
    """``equals``, ``contains``, ``not_contains`` or ``regex`` on the reply (or case-blind)."""

    def __init__(
        self,
        name: str,
        check: str,
        *,
        value: str | None = None,
        expected: str | None = None,
        ignore_case: bool = False,
        threshold: float = 1.0,
    ) -> None:
        if check not in STRING_CHECKS:
            raise ConfigError(f"unknown string check {check!r}; use one of {STRING_CHECKS}")
        self.name = name
        self.check = check
        self.reference = _Reference(value=value, expected=expected)
        self.ignore_case = ignore_case
        self.threshold = threshold
        if check == "regex" and value is not None:
            try:
                re.compile(value, re.IGNORECASE if ignore_case else 0)
            except re.error as exc:
                raise ConfigError(f"grader {name!r}: `value` is not a regex: {exc}") from None

    @property
    def needs_expected(self) -> bool:
        return self.reference.needs_expected

    async def grade(self, sample: Sample) -> Grade:
        wanted = self.reference.of(sample)
        if wanted is None:
            return _missing(self.name, self.threshold, self.reference)
        reply = sample.trace.reply
        if self.check == "regex":
            flags = re.IGNORECASE if self.ignore_case else 0
            ok = re.search(wanted, reply, flags) is not None
            why = f"/{wanted}/ {'matches' if ok else 'does not match'} the reply"
        else:
            a, b = (reply.casefold(), wanted.casefold()) if self.ignore_case else (reply, wanted)
            if self.check == "equals":
                ok = a.strip() == b.strip()
                why = "the reply equals" if ok else "the reply differs from"
                why += f" {wanted!r}"
            else:
                present = b in a
                ok = present if self.check == "contains" else not present
                why = f"{wanted!r} is {'in' if present else 'not in'} the reply"
        score = 1.0 if ok else 0.0
        return Grade(
            grader=self.name,
            score=score,
            passed=score >= self.threshold,
            reason=why,
            threshold=self.threshold,
        )


# One scorer per kind, made on first use (building one loads its tokenizer).
_ROUGE: dict[str, Any] = {}


def _rouge(kind: str) -> Any:
    scorer = _ROUGE.get(kind)
    if scorer is None:
        scorer = _ROUGE[kind] = rouge_scorer.RougeScorer([kind], use_stemmer=True)
    return scorer


_BLEU = BLEU(effective_order=True)


def similarity(kind: str, reply: str, reference: str) -> float:
    """The similarity of ``reply`` to ``reference`` in 0..1 by ``kind``."""
    if kind == "fuzzy":
        return float(fuzz.ratio(reply, reference)) / 100.0
    if kind == "bleu":
        return float(_BLEU.sentence_score(reply, [reference]).score) / 100.0
    score = _rouge(kind).score(reference, reply)[kind]
    return float(score.fmeasure)


@final
class SimilarityGrader:
    """Fuzzy ratio, BLEU or ROUGE of the reply against a reference; passes at ``threshold``."""

    def __init__(
        self,
        name: str,
        kind: str,
        *,
        value: str | None = None,
        expected: str | None = None,
        ignore_case: bool = False,
        threshold: float = 0.8,
    ) -> None:
        if kind not in SIMILARITIES:
            raise ConfigError(f"unknown similarity {kind!r}; use one of {SIMILARITIES}")
        self.name = name
        self.kind = kind
        self.reference = _Reference(value=value, expected=expected)
        self.ignore_case = ignore_case
        self.threshold = threshold

    @property
    def needs_expected(self) -> bool:
        return self.reference.needs_expected

    async def grade(self, sample: Sample) -> Grade:
        reference = self.reference.of(sample)
        if reference is None:
            return _missing(self.name, self.threshold, self.reference)
        reply = sample.trace.reply
        if self.ignore_case:
            reply, reference = reply.casefold(), reference.casefold()
        score = similarity(self.kind, reply, reference)
        return Grade(
            grader=self.name,
            score=score,
            passed=score >= self.threshold,
            reason=f"{self.kind} {score:.3f} against {reference[:80]!r} "
            f"(pass at {self.threshold:g})",
            threshold=self.threshold,
        )


@final
class JsonSchemaGrader:
    """The reply (or the JSON object inside a fenced block of it) is valid under a schema."""

    needs_expected = False

    def __init__(self, name: str, schema: dict[str, object], *, threshold: float = 1.0) -> None:
        try:
            validator_class = jsonschema.validators.validator_for(schema)
            validator_class.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConfigError(
                f"grader {name!r}: `schema` is not a JSON Schema: {exc.message}"
            ) from None
        self.name = name
        self.threshold = threshold
        self._validator = validator_class(schema)

    async def grade(self, sample: Sample) -> Grade:
        text = sample.trace.reply.strip()
        fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
        if fenced:
            text = fenced.group(1).strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return self._verdict(False, f"the reply is not JSON: {exc.msg} at {exc.pos}")
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            at = "$" + "".join(f"[{p!r}]" for p in first.path)
            return self._verdict(False, f"{len(errors)} schema error(s); {at}: {first.message}")
        return self._verdict(True, "the reply is valid under the schema")

    def _verdict(self, ok: bool, reason: str) -> Grade:
        score = 1.0 if ok else 0.0
        return Grade(
            grader=self.name,
            score=score,
            passed=score >= self.threshold,
            reason=reason,
            threshold=self.threshold,
        )
