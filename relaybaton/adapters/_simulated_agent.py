"""How the simulated model acts as an agent: plan the next calls, fill arguments, answer.

The simulated model reads only what a real model would: the instructions, the messages and
the tools' JSON Schemas and descriptions. From them it:

- hands off only when a handoff's description fits the message well (two words in common,
  or the receiving agent's name), so a question no team covers stays with the agent;
- answers a greeting with one;
- calls the tools the message or the instructions name, in a sensible order: first those
  that look things up or ask an expert (``lookup_``, ``check_``, ``get_``, agents used as
  tools), all at once; then, if none failed (an error, or ``"found": false``), one action
  at a time (``issue_``, ``publish_``, ...);
- fills arguments by their schema and description: ids like ``AB-1234`` (from the message,
  else from a result), amounts like ``$42`` (else a looked-up ``total``), percentages, code
  after a colon, a report of the results;
- answers in sentences: what it did ("I've refunded ..."), what it could not do and why,
  what it found, and the ``Knowledge:`` line of its instructions that fits the question;
- answers JSON that fits ``response_format``'s schema when asked to (an agent used as a
  tool with an output schema): each fitting ``Knowledge:`` line becomes one finding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from relaybaton.adapters._chat import ToolResultMessage, ToolSpec

__all__ = [
    "arguments_for",
    "compose_answer",
    "greeting_reply",
    "is_failure",
    "is_read",
    "knowledge_lines",
    "keywords",
    "plan",
    "structured_answer",
    "wants_handoff",
]

_WORD = re.compile(r"[a-z][a-z0-9]+")
_DOLLARS = re.compile(r"\$\s?(\d+(?:,\d{3})*(?:\.\d+)?)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_NUMBER = re.compile(r"(?<![\w.$-])(\d+(?:\.\d+)?)(?![\w%-])")
_ID = re.compile(r"\b([A-Za-z]{1,4}-\d{3,})\b")
_CWE = re.compile(r"CWE-\d+", re.IGNORECASE)
_GREETING = re.compile(
    r"^\W*(hi|hello|hey|hiya|good (morning|afternoon|evening)|greetings)\b[\w\s,!.']{0,20}$",
    re.IGNORECASE,
)
_READS = (
    "lookup_", "look_", "get_", "find_", "search_", "check_", "list_", "read_", "fetch_",
    "query_", "verify_", "scan_", "review_",
)  # fmt: skip
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
        "my",
        "me",
        "its",
        "it",
        "is",
        "on",
        "in",
        "of",
        "to",
        "an",
        "be",
        "do",
        "does",
        "did",
        "there",
        "here",
        "some",
    ]
)
# Words every request of a kind shares: they say nothing about which line or tool fits.
_GENERIC = frozenset(["code", "review", "bug", "performance", "security", "customer", "team"])


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)]
            break
    # "charge", "charges" and "charged" all become "charg".
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def keywords(text: str) -> set[str]:
    """The content words of ``text``, stemmed."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP}


def _phrase(name: str) -> str:
    return name.replace("_", " ")


def greeting_reply(text: str, handoffs: Sequence[ToolSpec]) -> str | None:
    """A greeting's answer, naming what the agent's teams help with; None if not one."""
    if not _GREETING.match(text.strip()):
        return None
    areas = [re.split(r"[:.]", h.description, maxsplit=1)[0].strip().lower() for h in handoffs]
    areas = [a for a in areas if a]
    if not areas:
        return "Hello! How can I help you today?"
    listed = areas[0] if len(areas) == 1 else ", ".join(areas[:-1]) + " or " + areas[-1]
    return f"Hello! How can I help you today? I can help with {listed}."


def wants_handoff(handoffs: Sequence[ToolSpec], text: str) -> ToolSpec | None:
    """The handoff whose description fits ``text`` best, if it fits well enough."""
    wanted = keywords(text) - _GENERIC
    best: tuple[int, ToolSpec] | None = None
    for spec in handoffs:
        target = spec.name.removeprefix("transfer_to_")
        score = len(keywords(f"{_phrase(target)} {spec.description}") & wanted)
        if _stem(target.lower()) in wanted:
            score += 1
        if score >= 2 and (best is None or score > best[0]):
            best = (score, spec)
    return best[1] if best else None


def is_read(tool: ToolSpec) -> bool:
    """Whether calling ``tool`` only looks something up (or asks an expert)."""
    properties = tool.parameters.get("properties")
    asks_agent = isinstance(properties, Mapping) and list(properties) == ["input"]
    return tool.name.startswith(_READS) or asks_agent


def is_failure(result: ToolResultMessage) -> bool:
    """An error, or a lookup that found nothing: the plan stops there."""
    if result.is_error:
        return True
    value = _json(result.content)
    return isinstance(value, Mapping) and (value.get("found") is False or "error" in value)


def _json(text: str) -> Any:
    if text[:1] not in ("{", "["):
        return None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None


def _takes_id(tool: ToolSpec) -> bool:
    properties = tool.parameters.get("properties")
    return isinstance(properties, Mapping) and any(
        name == "id" or name.endswith("_id") for name in properties
    )


def _relevant(tools: Sequence[ToolSpec], text: str, instructions: str) -> list[ToolSpec]:
    wanted = keywords(text) - _GENERIC
    named = instructions.lower()
    chosen = [
        t
        for t in tools
        if _phrase(t.name) in named
        or t.name in named
        or keywords(f"{_phrase(t.name)} {t.description}") & wanted
    ]
    if _ID.search(text) and any(_takes_id(t) for t in chosen):
        # An id to act on is looked up first, by every lookup that takes one.
        chosen += [t for t in tools if t not in chosen and is_read(t) and _takes_id(t)]
    return chosen


def plan(
    tools: Sequence[ToolSpec],
    text: str,
    instructions: str,
    called: set[str],
    results: Sequence[ToolResultMessage],
) -> list[ToolSpec]:
    """The tools to call next (several reads at once, or one action), or none: answer."""
    if any(is_failure(r) for r in results):
        return []
    relevant = _relevant(tools, text, instructions)
    reads = [t for t in relevant if is_read(t) and t.name not in called]
    if reads:
        return reads
    acts = [t for t in relevant if not is_read(t) and t.name not in called]
    acts.sort(key=lambda t: t.name.startswith(_FINAL))  # a release comes last
    return acts[:1]


def _code(text: str) -> str:
    head, colon, rest = text.partition(":")
    return rest.strip() if colon and len(head) < 120 and rest.strip() else text


def _looked_up(results: Sequence[ToolResultMessage], field: str) -> Any:
    for result in reversed(results):
        value = _json(result.content)
        if isinstance(value, Mapping) and value.get(field) is not None:
            return value[field]
    return None


def arguments_for(
    tool: ToolSpec,
    text: str,
    results: Sequence[ToolResultMessage],
    purpose: str,
    report: str = "",
) -> dict[str, object]:
    """Fill ``tool``'s JSON Schema from the message and the results, as its docs suggest."""
    properties = tool.parameters.get("properties")
    required_value = tool.parameters.get("required", [])
    required = required_value if isinstance(required_value, list) else []
    if not isinstance(properties, Mapping):
        return {}
    ids = [i.upper() for i in _ID.findall(text)]
    rest = _ID.sub(" ", text)
    dollars = [float(n.replace(",", "")) for n in _DOLLARS.findall(rest)]
    percents = [float(n) for n in _PERCENT.findall(rest)]
    numbers = [float(n) for n in _NUMBER.findall(_PERCENT.sub(" ", _DOLLARS.sub(" ", rest)))]
    arguments: dict[str, object] = {}
    for name, schema in properties.items():
        if not isinstance(schema, Mapping):
            continue
        kind = schema.get("type")
        about = f"{name} {schema.get('description', '')}".lower()
        value: object = None
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            value = schema["enum"][0]
        elif kind in ("number", "integer"):
            if "finding" in about:
                value = sum(1 for r in results if _SECURITY.search(r.content))
            elif "percent" in about or "effect" in about:
                value = percents[0] if percents else None
            elif "amount" in about or "dollar" in about or "price" in about:
                value = dollars[0] if dollars else _looked_up(results, "total")
            else:
                found = dollars or numbers
                value = found[0] if found else None
            if isinstance(value, int | float) and kind == "integer":
                value = int(value)
        elif kind == "boolean":
            value = True
        elif kind == "string":
            if "id" in re.findall(r"[a-z]+", about) or re.search(r"[A-Z]{2}-\d{4}", about):
                value = ids[0] if ids else _looked_up(results, name)
            elif name == "reason" and purpose == "handoff":
                value = f"the customer asks: {text[:120]}"
            elif name == "code" or "code" in about.split()[:3]:
                value = _code(text)
            elif name in ("report", "summary"):
                value = report or text
            else:
                value = text
        if value is None and name in required:
            value = 0 if kind in ("number", "integer") else ("" if kind == "string" else None)
        if value is not None or name in required:
            arguments[name] = value
    return arguments


def knowledge_lines(instructions: str) -> list[str]:
    """The ``Knowledge:`` lines of the instructions."""
    return [
        line.split(":", 1)[1].strip()
        for line in instructions.splitlines()
        if line.strip().lower().startswith("knowledge:")
    ]


def _best_knowledge(instructions: str, text: str, at_least: int = 2) -> str | None:
    wanted = keywords(text) - _GENERIC
    scored = [(len(keywords(k) & wanted), k) for k in knowledge_lines(instructions)]
    scored = [(s, k) for s, k in scored if s >= at_least]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    if text.split(" ", 1)[0].isalpha():  # not "open().read()": code keeps its case
        text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def _format(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:.2f}"
    if isinstance(value, list):
        parts = []
        for item in value:
            if isinstance(item, Mapping):
                described = next(
                    (item[k] for k in ("description", "issue", "suggestion", "name") if k in item),
                    "",
                )
                amount = item.get("amount")
                priced = f"{described} (${amount:.2f})" if amount is not None else str(described)
                parts.append(priced.rstrip("."))
            else:
                parts.append(str(item))
        return ", ".join(parts) if parts else "none"
    return str(value)


def _money(key: str, value: object) -> str:
    if isinstance(value, int | float) and key in ("total", "amount", "price", "paid"):
        return f"${value:.2f}"
    return _format(value)


def _describe(result: ToolResultMessage) -> str:
    """One sentence about a result, as a person would say it."""
    value = _json(result.content)
    if isinstance(value, Mapping):
        ids = [v for k, v in value.items() if k.endswith("id") or k in ("invoice", "order")]
        if value.get("found") is False:
            missing = ids[0] if ids else "it"
            return f"I couldn't find {missing}; please check the number and try again."
        if isinstance(value.get("findings"), list):
            findings = value["findings"]
            if not findings:
                return f"The {_phrase(result.name)} found nothing to fix."
            return f"The {_phrase(result.name)} found {len(findings)}: {_format(findings)}."
        subject = _phrase(
            result.name.split("_", 1)[-1] if is_read_name(result.name) else result.name
        )
        head = f"{subject} {ids[0]}" if ids else subject
        fields = [
            f"{_phrase(k)} {_money(k, v)}"
            for k, v in value.items()
            if k != "found" and v not in (None, "", []) and v not in ids
        ]
        return _sentence(f"{head}: {', '.join(fields)}")
    if result.content.split(" ", 1)[0].endswith("ed"):  # "refunded $42.00 ..." is a deed
        return _sentence(f"I've {result.content}")
    return _sentence(result.content)


def is_read_name(name: str) -> bool:
    """Whether a tool's name says it looks something up."""
    return name.startswith(_READS)


def _doing(name: str) -> str:
    verb, _, rest = _phrase(name).partition(" ")
    return f"{verb} the {rest}" if rest else verb


def _refusal(result: ToolResultMessage, read: bool) -> str:
    reason = result.content
    for cut in (f"{result.name} refused: ", f"{result.name} may not run yet: "):
        reason = reason.removeprefix(cut)
    reason = reason.split("; nothing was done")[0].split("; do not retry")[0]
    doing = f"get an answer from the {_phrase(result.name)}" if read else _doing(result.name)
    return _sentence(f"I couldn't {doing}: {reason}")


def compose_answer(
    instructions: str,
    text: str,
    results: Sequence[ToolResultMessage],
    tools: Sequence[ToolSpec],
) -> str:
    """The final reply: what was done or refused, what was found, and what it knows."""
    reads = {t.name for t in tools if is_read(t)}
    done = [r for r in results if not r.content.startswith("Transferred")]
    missing = next((r for r in done if not r.is_error and is_failure(r)), None)
    if missing is not None:
        return _describe(missing)
    acted = any(not r.is_error and r.name not in reads for r in done)
    sentences: list[str] = []
    # What was done or refused first, then what was found, then what the agent knows.
    for result in sorted(done, key=lambda r: r.name in reads):
        if result.is_error:
            sentences.append(_refusal(result, result.name in reads))
        elif (
            result.name not in reads
            or not acted
            or _json(result.content) is None  # an expert's words, not a lookup's data
            or "findings" in result.content[:20]
        ):
            sentences.append(_describe(result))
    known = _best_knowledge(instructions, text)
    if known is not None and known not in " ".join(sentences):
        # An explanation answers a question best first; after a deed, it adds to it.
        sentences.insert(len(sentences) if acted else 0, known)
    if sentences:
        return " ".join(dict.fromkeys(s for s in sentences if s))
    areas = [
        re.split(r"[:.]", t.description, maxsplit=1)[0].strip().lower()
        for t in tools
        if t.name.startswith("transfer_to_")
    ]
    if any(areas):  # a front-line agent says what its teams help with
        return (
            "I'm sorry, I can't help with that here. I can help with "
            + " or ".join(a for a in areas if a)
            + "; could you tell me more about what you need?"
        )
    lines = knowledge_lines(instructions)
    if lines:  # nothing fits better: what the agent knows first is its best guess
        return lines[0]
    return "I'm sorry, I don't have an answer to that. Could you tell me more about what you need?"


def structured_answer(schema: Mapping[str, Any], instructions: str, text: str) -> object:
    """A JSON value that fits ``schema``: each ``Knowledge:`` line that fits is a finding."""
    wanted = keywords(text) - _GENERIC
    fitting = [k for k in knowledge_lines(instructions) if len(keywords(k) & wanted) >= 2]
    return _fill(schema, fitting, text)


def _fill(schema: Mapping[str, Any], lines: Sequence[str], text: str, line: str = "") -> object:
    kind = schema.get("type")
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        choices = schema["enum"]
        if line and _SECURITY.search(line) and "high" in choices:
            return "high"
        return choices[0]
    if kind == "object":
        properties = schema.get("properties", {})
        return {
            name: _fill_field(name, sub, lines, text, line)
            for name, sub in properties.items()
            if isinstance(sub, Mapping)
        }
    if kind == "array":
        items = schema.get("items", {})
        return (
            [_fill(items, lines, text, one) for one in lines] if isinstance(items, Mapping) else []
        )
    if kind == "boolean":
        return not lines
    if kind in ("number", "integer"):
        percents = _PERCENT.findall(text) or _PERCENT.findall(line)
        return (
            int(float(percents[0]))
            if kind == "integer" and percents
            else (float(percents[0]) if percents else 0)
        )
    return line or text[:200]


def _fill_field(
    name: str, schema: Mapping[str, Any], lines: Sequence[str], text: str, line: str
) -> object:
    if schema.get("type") == "string" and line and not schema.get("enum"):
        first, _, second = line.partition(";")
        lowered = name.lower()
        if "cwe" in lowered:
            found = _CWE.search(line)
            return found.group(0).upper() if found else ""
        if lowered in ("fix", "recommendation", "remedy"):
            return _sentence(second or first)
        if lowered == "suggestion":
            return _sentence(line)
        return _sentence(first)
    return _fill(schema, lines, text, line)
