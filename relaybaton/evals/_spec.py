"""Graders as declared in a flow file's ``[evals]`` table or a graders file.

One ``[[evals.graders]]`` entry per grader (in a graders file, ``[[graders]]``)::

    [[evals.graders]]
    name = "refund_waits_for_a_person"
    kind = "approval_required"       # the check; its options below
    tool = "issue_refund"
    when = "amount > 100"

Kinds and their options: ``equals`` / ``contains`` / ``not_contains`` / ``regex`` (``value``
or ``expected``, ``ignore_case``); ``fuzzy`` / ``bleu`` / ``rouge1`` / ``rouge2`` /
``rougeL`` (``value`` or ``expected``, ``threshold``); ``json_schema`` (``schema`` or
``schema_file``); ``handoff`` (``agent``, ``happened``); ``tool_called`` (``tool``,
``when``, ``called``); ``approval_required`` (``tool``, ``when``); ``max_model_calls`` /
``max_handoffs`` / ``max_tool_calls`` / ``max_cost_usd`` / ``max_latency_s`` (``limit``);
``no_tool_error``; ``final_owner`` (``agent``); ``model`` (``slot``, ``rubric``,
``labels``, ``scale``); ``python`` (``function = "file.py:name"``). ``online = false``
keeps a grader off live traffic; ``tags = ["refund"]`` applies it only to items whose
``metadata.tags`` hold one of them (a live conversation has none, so it is skipped there).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import final

import msgspec

from relaybaton.adapters import ModelAdapter
from relaybaton.errors import ConfigError
from relaybaton.evals._function_grader import FunctionGrader
from relaybaton.evals._grade import Grade, Grader, Sample
from relaybaton.evals._model_grader import ModelGrader
from relaybaton.evals._text_graders import (
    SIMILARITIES,
    STRING_CHECKS,
    JsonSchemaGrader,
    SimilarityGrader,
    StringGrader,
)
from relaybaton.evals._trace_graders import (
    LIMITS,
    ApprovalRequiredGrader,
    FinalOwnerGrader,
    HandoffGrader,
    LimitGrader,
    NoToolErrorGrader,
    ToolCalledGrader,
)

__all__ = [
    "EvalsConfig",
    "GraderSpec",
    "KINDS",
    "Thresholds",
    "create_graders",
    "load_graders_file",
]

KINDS = (
    *STRING_CHECKS,
    *SIMILARITIES,
    "json_schema",
    "handoff",
    "tool_called",
    "approval_required",
    *LIMITS,
    "no_tool_error",
    "final_owner",
    "model",
    "python",
)

_SIMILARITY_DEFAULT = {"fuzzy": 0.8, "bleu": 0.3, "rouge1": 0.5, "rouge2": 0.3, "rougeL": 0.5}


class GraderSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One ``[[evals.graders]]`` entry; which options apply depends on ``kind``."""

    name: str
    kind: str
    value: str | None = None
    expected: str | None = None
    ignore_case: bool = False
    threshold: float | None = None
    schema: dict[str, object] | None = None
    schema_file: str | None = None
    agent: str | None = None
    happened: bool = True
    tool: str | None = None
    when: str | None = None
    called: bool = True
    limit: float | None = None
    slot: str | None = None
    rubric: str | None = None
    labels: dict[str, float] | None = None
    scale: float = 1.0
    function: str | None = None
    online: bool = True
    tags: list[str] = msgspec.field(default_factory=list)


class Thresholds(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Watched thresholds (the seed's: p95 < 500 ms, errors < 1%, satisfaction > 4.5/5)."""

    p95_ms: float | None = None
    error_rate: float | None = None
    cost_per_1k_tokens_usd: float | None = None
    satisfaction: float | None = None


class EvalsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[evals]`` table: graders, the live share graded in ``serve``, thresholds."""

    graders: list[GraderSpec] = msgspec.field(default_factory=list)
    sample: float = 0.0
    queue: int = 1000
    thresholds: Thresholds = msgspec.field(default_factory=Thresholds)


@final
class ScopedGrader:
    """A grader that applies only to items tagged with one of ``tags``."""

    needs_expected = True  # live conversations carry no tags

    def __init__(self, inner: Grader, tags: list[str]) -> None:
        self.inner = inner
        self.tags = frozenset(tags)
        self.name = inner.name
        self.threshold = inner.threshold

    def applies(self, sample: Sample) -> bool:
        """Whether the sample's item carries one of the tags."""
        tags = sample.item.metadata.get("tags", ())
        if isinstance(tags, str):
            tags = (tags,)
        return isinstance(tags, list | tuple) and not self.tags.isdisjoint(tags)

    async def grade(self, sample: Sample) -> Grade:
        return await self.inner.grade(sample)


Resolver = Callable[[str, Path], Callable[..., object]]
Judges = Mapping[str, Callable[[], ModelAdapter]]


def _need(spec: GraderSpec, at: str, *fields: str) -> None:
    for field in fields:
        if getattr(spec, field) is None:
            raise ConfigError(f"{at}.{field}: a {spec.kind!r} grader needs `{field}`")


def _schema(spec: GraderSpec, at: str, base_dir: Path) -> dict[str, object]:
    if spec.schema is not None:
        return spec.schema
    _need(spec, at, "schema_file")
    path = base_dir / str(spec.schema_file)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{at}.schema_file: cannot read {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{at}.schema_file: {path} does not hold a JSON object")
    return loaded


def create_grader(
    spec: GraderSpec, at: str, base_dir: Path, resolve: Resolver, judges: Judges
) -> Grader:
    """The grader ``spec`` declares; ``ConfigError`` names the field at ``at`` and the fix."""
    kind = spec.kind
    threshold = spec.threshold
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"{at}.threshold: must be within 0..1, got {threshold}")
    if kind in STRING_CHECKS:
        if spec.value is None and spec.expected is None:
            raise ConfigError(
                f"{at}: a {kind!r} grader needs `value` (a fixed string) or `expected` (the "
                'name of an item\'s expected value; "" for the whole expected string)'
            )
        return StringGrader(
            spec.name, kind, value=spec.value, expected=spec.expected,
            ignore_case=spec.ignore_case, threshold=1.0 if threshold is None else threshold,
        )  # fmt: skip
    if kind in SIMILARITIES:
        return SimilarityGrader(
            spec.name, kind, value=spec.value, expected=spec.expected if spec.value is None
            else None, ignore_case=spec.ignore_case,
            threshold=_SIMILARITY_DEFAULT[kind] if threshold is None else threshold,
        )  # fmt: skip
    if kind == "json_schema":
        return JsonSchemaGrader(spec.name, _schema(spec, at, base_dir))
    if kind == "handoff":
        _need(spec, at, "agent")
        return HandoffGrader(spec.name, str(spec.agent), happened=spec.happened)
    if kind == "tool_called":
        _need(spec, at, "tool")
        return ToolCalledGrader(spec.name, str(spec.tool), when=spec.when, called=spec.called)
    if kind == "approval_required":
        _need(spec, at, "tool")
        return ApprovalRequiredGrader(spec.name, str(spec.tool), when=spec.when)
    if kind in LIMITS:
        _need(spec, at, "limit")
        return LimitGrader(spec.name, kind, float(spec.limit or 0.0))
    if kind == "no_tool_error":
        return NoToolErrorGrader(spec.name)
    if kind == "final_owner":
        _need(spec, at, "agent")
        return FinalOwnerGrader(spec.name, str(spec.agent))
    if kind == "model":
        _need(spec, at, "slot", "rubric")
        judge = judges.get(str(spec.slot))
        if judge is None:
            raise ConfigError(
                f'{at}.slot: no model slot named "{spec.slot}"; the flow\'s slots: '
                f"{', '.join(sorted(judges)) or 'none'}"
            )
        return ModelGrader(
            spec.name, slot=str(spec.slot), rubric=str(spec.rubric), judge=judge,
            labels=spec.labels, scale=spec.scale,
            threshold=0.5 if threshold is None else threshold,
        )  # fmt: skip
    if kind == "python":
        _need(spec, at, "function")
        function = resolve(str(spec.function), base_dir)
        return FunctionGrader(
            spec.name, function, threshold=1.0 if threshold is None else threshold,
            needs_expected=not spec.online,
        )  # fmt: skip
    raise ConfigError(f'{at}.kind: unknown grader kind "{kind}"; use one of {", ".join(KINDS)}')


def create_graders(
    specs: list[GraderSpec],
    *,
    base_dir: Path,
    resolve: Resolver,
    judges: Judges,
    where: str = "evals.graders",
) -> list[Grader]:
    """Every grader of ``specs``; ``ConfigError`` lists each problem with its path."""
    graders: list[Grader] = []
    problems: list[str] = []
    names: set[str] = set()
    for index, spec in enumerate(specs):
        at = f"{where}[{index}]"
        if spec.name in names:
            problems.append(f"{at}.name: grader {spec.name!r} is declared twice")
            continue
        names.add(spec.name)
        try:
            grader = create_grader(spec, at, base_dir, resolve, judges)
            graders.append(ScopedGrader(grader, spec.tags) if spec.tags else grader)
        except ConfigError as exc:
            problems.append(str(exc) if str(exc).startswith(where) else f"{at}: {exc}")
    if problems:
        raise ConfigError("; ".join(problems))
    return graders


class _GradersFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    graders: list[GraderSpec] = msgspec.field(default_factory=list)


def load_graders_file(path: str | Path) -> list[GraderSpec]:
    """The ``[[graders]]`` of a TOML graders file; ``ConfigError`` names the field."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such graders file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None
    try:
        specs = msgspec.convert(raw, _GradersFile).graders
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    # A graders file's own files (Python graders, schemas) are beside it, not beside the flow.
    here = file.resolve().parent
    for spec in specs:
        if spec.function and spec.function.partition(":")[0].endswith(".py"):
            module, _, name = spec.function.partition(":")
            spec.function = f"{here / module}:{name}"
        if spec.schema_file:
            spec.schema_file = str(here / spec.schema_file)
    return specs
