"""Datasets: items of one or more user messages, with expected values and metadata.

A JSONL file holds one JSON object per line::

    {"id": "refund-1", "messages": ["I want a refund of $40"], "expected": "refund",
     "metadata": {"tags": ["refund"]}}

``messages`` may also be one string (``"input"`` is accepted for it), ``expected`` a string
or an object of named values (a grader picks one by name). A CSV file has a header with
``id``, ``input`` (or ``messages``, a JSON list or ``|``-separated turns), ``expected`` and
any other columns, which become metadata. Every problem is reported with its file, line and
field, the way flow files report theirs.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import msgspec

from relaybaton.errors import ConfigError

__all__ = ["EvalItem", "load_dataset", "parse_items"]

Expected = str | dict[str, object] | None


class EvalItem(msgspec.Struct, frozen=True, kw_only=True):
    """One case: the user's turns, what is expected of the answer, and free metadata."""

    id: str
    messages: tuple[str, ...]
    expected: Expected = None
    metadata: dict[str, object] = msgspec.field(default_factory=dict)

    def expected_value(self, key: str | None) -> object | None:
        """The expected value named ``key`` (the whole value when ``key`` is None)."""
        if key is None:
            return self.expected
        if isinstance(self.expected, dict):
            return self.expected.get(key)
        return None


def _item(raw: object, where: str, index: int) -> EvalItem:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a JSON object per item, got {type(raw).__name__}")
    known = {"id", "messages", "input", "expected", "metadata"}
    messages = raw.get("messages", raw.get("input"))
    if isinstance(messages, str):
        messages = [messages]
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, str) and m for m in messages)
    ):
        raise ConfigError(
            f"{where}: `messages` must be a non-empty string or list of non-empty strings "
            f"(the user's turns), got {messages!r}"
        )
    expected = raw.get("expected")
    if expected is not None and not isinstance(expected, str | dict):
        raise ConfigError(
            f"{where}: `expected` must be a string or an object of named values, "
            f"got {type(expected).__name__}"
        )
    metadata = raw.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ConfigError(f"{where}: `metadata` must be an object, got {type(metadata).__name__}")
    # Unknown top-level keys are kept as metadata: a dataset exported from elsewhere keeps
    # its columns without a schema of ours to agree with.
    extra = {k: v for k, v in raw.items() if k not in known}
    item_id = raw.get("id", f"item-{index + 1}")
    if not isinstance(item_id, str | int) or item_id == "":
        raise ConfigError(f"{where}: `id` must be a non-empty string, got {item_id!r}")
    return EvalItem(
        id=str(item_id),
        messages=tuple(messages),
        expected=expected,
        metadata={**extra, **metadata},
    )


def parse_items(rows: Iterable[object], source: str = "<items>") -> list[EvalItem]:
    """Items from decoded rows; raise ``ConfigError`` naming the row and field."""
    items = [_item(raw, f"{source}: item {i + 1}", i) for i, raw in enumerate(rows)]
    _check_unique(items, source)
    return items


def _check_unique(items: Sequence[EvalItem], source: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ConfigError(f"{source}: item id {item.id!r} appears twice; ids must be unique")
        seen.add(item.id)
    if not items:
        raise ConfigError(f"{source}: the dataset has no items")


def _jsonl(text: str, source: str) -> list[EvalItem]:
    items: list[EvalItem] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}:{number}: not valid JSON: {exc.msg}") from None
        items.append(_item(raw, f"{source}:{number}", len(items)))
    _check_unique(items, source)
    return items


def _csv_row(row: dict[str, str], where: str) -> dict[str, object]:
    raw: dict[str, object] = {k: v for k, v in row.items() if k is not None}
    turns = raw.pop("messages", None)
    if isinstance(turns, str) and turns.strip():
        if turns.lstrip().startswith("["):
            try:
                raw["messages"] = json.loads(turns)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: `messages` is not a JSON list: {exc.msg}") from None
        else:
            raw["messages"] = [t.strip() for t in turns.split("|") if t.strip()]
    expected = raw.get("expected")
    if isinstance(expected, str) and expected.lstrip().startswith("{"):
        try:
            raw["expected"] = json.loads(expected)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: `expected` is not a JSON object: {exc.msg}") from None
    elif expected == "":
        raw.pop("expected")
    return raw


def _csv(text: str, source: str) -> list[EvalItem]:
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    if "input" not in header and "messages" not in header:
        raise ConfigError(
            f"{source}: a CSV dataset needs an `input` or `messages` column; its header has "
            f"{', '.join(header) or 'nothing'}"
        )
    items = [
        _item(_csv_row(row, f"{source}:{i + 2}"), f"{source}:{i + 2}", i)
        for i, row in enumerate(reader)
    ]
    _check_unique(items, source)
    return items


def load_dataset(path: str | Path) -> list[EvalItem]:
    """Read a ``.jsonl`` (or ``.json`` list) or ``.csv`` dataset; raise ``ConfigError``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such dataset file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None
    suffix = file.suffix.lower()
    if suffix == ".csv":
        return _csv(text, str(path))
    if suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc.msg}") from None
        if not isinstance(rows, list):
            raise ConfigError(f"{path}: a .json dataset must be a list of items")
        return parse_items(rows, str(path))
    if suffix in {".jsonl", ".ndjson"}:
        return _jsonl(text, str(path))
    raise ConfigError(f"{path}: unknown dataset format {suffix!r}; use .jsonl, .json or .csv")
