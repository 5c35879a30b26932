"""Routing rules: ``when`` conditions on task features, checked for dead and ambiguous rules.

A rule reads ``{ when = "complexity <= 3 and not vision", use = "general" }``. Conditions
are joined by ``and``; each is ``FEATURE OP NUMBER`` (``complexity``, ``expected_tokens``,
``cost``: the call's expected price in US cents on the slot's model; ops
``< <= > >= ==``), ``vision`` / ``tools`` or their ``not``, ``domain == "math"``,
``domain != "math"`` or ``domain in ["math", "code"]``. An empty ``when`` matches every call.

Rules are tried in list order, first match wins, unless any rule sets a ``priority``: then
higher priorities go first and rules of equal priority have *no* order between them, so two
of them that can take the same call and send it to different models are ambiguous.

``check_rules`` finds, before anything runs, a rule that can never match (its conditions
contradict each other, or earlier rules already take every call it would take: the classic
``if cost > 5 … elif cost > 15``) and ambiguous pairs. Every numeric feature is an integer,
so each rule is a box of integer ranges and the check is exact: it splits feature space at
every bound any rule names and tests each piece.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Sequence
from typing import final

from relaybaton.actors.routing._features import TaskFeatures
from relaybaton.errors import ConfigError

__all__ = ["Rule", "RuleProblem", "check_rules", "parse_condition"]

NUMERIC = ("complexity", "expected_tokens", "cost")
FLAGS = {"vision": "needs_vision", "tools": "needs_tools"}
_INF = math.inf
_NUM_COND = re.compile(r"^([a-z_]+)\s*(<=|>=|==|<|>)\s*(-?\d+(?:\.\d+)?)$")
_DOMAIN_COND = re.compile(r"^domain\s*(==|!=)\s*[\"']([^\"']+)[\"']$")
_DOMAIN_IN = re.compile(r"^domain\s+in\s*\[(.*)\]$")
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")

_Range = tuple[float, float]  # inclusive integer bounds; ±inf when open-ended


@final
class _Region:
    """The calls a rule takes: integer ranges, flag values and a domain set."""

    __slots__ = ("domains_in", "domains_out", "flags", "ranges")

    def __init__(self) -> None:
        self.ranges: dict[str, _Range] = {}
        self.flags: dict[str, bool] = {}
        self.domains_in: frozenset[str] | None = None  # None: any domain
        self.domains_out: frozenset[str] = frozenset()
        # A contradiction is kept as an empty range rather than an exception, so the checker
        # can say which rule is dead and why.

    def empty(self) -> bool:
        if any(lo > hi for lo, hi in self.ranges.values()):
            return True
        return self.domains_in is not None and not (self.domains_in - self.domains_out)

    def narrow(self, feature: str, lo: float, hi: float) -> None:
        old_lo, old_hi = self.ranges.get(feature, (-_INF, _INF))
        self.ranges[feature] = (max(lo, old_lo), min(hi, old_hi))

    def flag(self, name: str, value: bool) -> None:
        if self.flags.get(name, value) != value:
            self.ranges["__contradiction__"] = (1, 0)
        self.flags[name] = value

    def domain_only(self, names: frozenset[str]) -> None:
        self.domains_in = names if self.domains_in is None else self.domains_in & names


def parse_condition(text: str) -> _Region:
    """Parse a ``when`` string; raise ``ValueError`` saying what was expected."""
    region = _Region()
    for raw in re.split(r"\s+and\s+", text.strip()) if text.strip() else []:
        part = raw.strip()
        negated = part.startswith("not ")
        word = part[4:].strip() if negated else part
        if word in FLAGS:
            region.flag(FLAGS[word], not negated)
            continue
        if match := _NUM_COND.match(part):
            feature, op, number = match.group(1), match.group(2), float(match.group(3))
            if feature not in NUMERIC:
                raise ConfigError(
                    f"unknown feature `{feature}` in `{part}`; expected one of "
                    f"{', '.join(NUMERIC)}, vision, tools, domain"
                )
            lo, hi = _bounds(op, number)
            region.narrow(feature, lo, hi)
            continue
        if match := _DOMAIN_COND.match(part):
            name = frozenset({match.group(2)})
            if match.group(1) == "==":
                region.domain_only(name)
            else:
                region.domains_out |= name
            continue
        if match := _DOMAIN_IN.match(part):
            region.domain_only(frozenset(_QUOTED.findall(match.group(1))))
            continue
        raise ConfigError(
            f"cannot read condition `{part}`; expected e.g. `complexity <= 3`, `vision`, "
            '`not tools`, `domain == "math"` or `domain in ["math", "code"]`, joined by `and`'
        )
    return region


def _bounds(op: str, number: float) -> _Range:
    # Features are integers, so strict bounds become inclusive ones: `< 3.5` is `<= 3`.
    if op == "<":
        return -_INF, math.ceil(number) - 1
    if op == "<=":
        return -_INF, math.floor(number)
    if op == ">":
        return math.floor(number) + 1, _INF
    if op == ">=":
        return math.ceil(number), _INF
    return (number, number) if number == int(number) else (1, 0)


@final
class Rule:
    """One routing rule: send calls matching ``when`` to the candidate named ``use``."""

    __slots__ = ("index", "priority", "region", "use", "when")

    def __init__(self, when: str, use: str, *, priority: int | None = None, index: int = 0):
        self.when = when
        self.use = use
        self.priority = priority
        self.index = index
        self.region = parse_condition(when)

    def __repr__(self) -> str:
        return f"Rule({self.when!r} -> {self.use!r})"

    @property
    def label(self) -> str:
        """``rules[i] (when)`` for messages."""
        return f"rules[{self.index}] ({self.when or 'always'})"

    def matches(self, features: TaskFeatures) -> bool:
        """Whether the rule takes a call with these features."""
        region = self.region
        for feature, (lo, hi) in region.ranges.items():
            value = getattr(features, feature, None)
            if value is None or not lo <= value <= hi:
                return False
        for name, wanted in region.flags.items():
            if getattr(features, name) is not wanted:
                return False
        domain = features.domain
        if region.domains_in is not None and domain not in region.domains_in:
            return False
        return domain not in region.domains_out


def ordered(rules: Sequence[Rule]) -> list[Rule]:
    """Rules in the order the router tries them."""
    if all(r.priority is None for r in rules):
        return list(rules)
    return sorted(rules, key=lambda r: (-_rank(r), r.index))


def _rank(rule: Rule) -> int:
    # Once any rule sets a priority, a rule without one ranks as priority 0, for ordering and
    # for the ambiguity check alike.
    return rule.priority or 0


class RuleProblem:
    """A dead or ambiguous rule: its index and the message."""

    __slots__ = ("index", "message")

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        self.message = message

    def __repr__(self) -> str:
        return f"RuleProblem({self.index}, {self.message!r})"


# --- the check ------------------------------------------------------------------------------


def _pieces(rules: Sequence[Rule]) -> dict[str, list[_Range]]:
    """Split every constrained dimension into pieces no rule boundary crosses."""
    dims: dict[str, list[_Range]] = {}
    for feature in NUMERIC:
        cuts = sorted(
            {
                bound
                for r in rules
                if feature in r.region.ranges
                for bound in (r.region.ranges[feature][0], r.region.ranges[feature][1] + 1)
                if math.isfinite(bound)
            }
        )
        if not cuts:
            continue
        edges = [-_INF, *cuts, _INF]
        dims[feature] = [(a, b - 1) for a, b in itertools.pairwise(edges) if a <= b - 1]
    return dims


def _cells(region: _Region, rules: Sequence[Rule]) -> Iterator[dict[str, object]]:
    """Representative points of every piece of ``region``."""
    dims = _pieces(rules)
    axes: list[tuple[str, list[object]]] = []
    for feature, pieces in dims.items():
        lo, hi = region.ranges.get(feature, (-_INF, _INF))
        inside = [p for p in pieces if p[0] >= lo and p[1] <= hi]
        axes.append((feature, list(inside)))
    for name in FLAGS.values():
        if any(name in r.region.flags for r in rules):
            wanted = region.flags.get(name)
            axes.append(("flag:" + name, [True, False] if wanted is None else [wanted]))
    named = sorted(
        {d for r in rules for d in (r.region.domains_in or frozenset()) | r.region.domains_out}
    )
    if named:
        domains: list[object] = [d for d in [*named, "\x00other"] if _domain_ok(region, d)]
        axes.append(("domain", domains))
    for combo in itertools.product(*(values for _, values in axes)):
        yield {name: value for (name, _), value in zip(axes, combo, strict=True)}


def _domain_ok(region: _Region, domain: str) -> bool:
    if region.domains_in is not None and domain not in region.domains_in:
        return False
    return domain not in region.domains_out


def _contains(region: _Region, cell: dict[str, object]) -> bool:
    for feature, (lo, hi) in region.ranges.items():
        piece = cell.get(feature)
        if piece is None:
            if lo != -_INF or hi != _INF:
                return False  # an unsplit dimension is whole; a bounded rule cannot hold it
            continue
        assert isinstance(piece, tuple)
        if piece[0] < lo or piece[1] > hi:
            return False
    for name, wanted in region.flags.items():
        value = cell.get("flag:" + name)
        if value is not wanted:
            return False
    domain = cell.get("domain")
    return domain is None or _domain_ok(region, str(domain))


def _describe(cell: dict[str, object]) -> str:
    parts: list[str] = []
    for name, value in cell.items():
        if name.startswith("flag:"):
            flag = next(k for k, v in FLAGS.items() if v == name[5:])
            parts.append(flag if value else f"not {flag}")
        elif name == "domain":
            parts.append("any other domain" if value == "\x00other" else f'domain "{value}"')
        else:
            assert isinstance(value, tuple)
            lo, hi = value
            if lo == hi:
                parts.append(f"{name} = {int(lo)}")
            elif lo == -_INF:
                parts.append(f"{name} <= {int(hi)}")
            elif hi == _INF:
                parts.append(f"{name} >= {int(lo)}")
            else:
                parts.append(f"{name} {int(lo)}..{int(hi)}")
    return " and ".join(parts) or "every call"


def check_rules(rules: Sequence[Rule], *, max_cells: int = 200_000) -> list[RuleProblem]:
    """Every dead rule and every ambiguous pair, with messages that name the rules."""
    problems: list[RuleProblem] = []
    order = ordered(rules)
    explicit = any(r.priority is not None for r in rules)
    for position, rule in enumerate(order):
        if rule.region.empty():
            problems.append(
                RuleProblem(
                    rule.index,
                    f"can never match: its conditions contradict each other ({rule.when})",
                )
            )
            continue
        earlier = [
            r
            for r in order[:position]
            if not r.region.empty() and (not explicit or _rank(r) > _rank(rule))
        ]
        cells = list(itertools.islice(_cells(rule.region, rules), max_cells))
        covering = [[r for r in earlier if _contains(r.region, cell)] for cell in cells]
        if cells and all(covering):
            problems.append(RuleProblem(rule.index, _dead_message(rule, earlier, cells)))
            continue
        if explicit:
            for other in order[:position]:
                if _rank(other) != _rank(rule) or other.use == rule.use:
                    continue
                shared = next((c for c in cells if _contains(other.region, c)), None)
                if shared is not None:
                    problems.append(
                        RuleProblem(
                            rule.index,
                            f"overlaps {other.label} with the same priority "
                            f"{_rank(rule)}: both take calls with {_describe(shared)} "
                            f"but send them to {other.use!r} and {rule.use!r}; give one a "
                            "higher priority or narrow one",
                        )
                    )
    return problems


def _dead_message(rule: Rule, earlier: Sequence[Rule], cells: Sequence[dict[str, object]]) -> str:
    single = [r for r in earlier if all(_contains(r.region, c) for c in cells)]
    if single:
        first = single[0]
        return (
            f"can never match: {first.label} already takes every call with "
            f"{rule.when or 'any features'}; put rules[{rule.index}] before "
            f"rules[{first.index}] or narrow rules[{first.index}]"
        )
    used = sorted({r.index for r in earlier for c in cells if _contains(r.region, c)})
    names = " and ".join(f"rules[{i}]" for i in used)
    return (
        f"can never match: {names} together already take every call with "
        f"{rule.when or 'any features'}; remove rules[{rule.index}] or narrow them"
    )
