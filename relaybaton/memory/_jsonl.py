"""The MCP memory server's JSONL file: read it into a store, write a store out as one.

The format is the reference server's: one compact JSON object per line, every entity
(``type``, ``name``, ``entityType``, ``observations``) before every relation (``type``,
``from``, ``to``, ``relationType``), non-ASCII written raw, lines joined by ``\\n`` with no
trailing newline. Writing reproduces ``JSON.stringify`` byte for byte, so exporting a
graph imported from a file the reference wrote gives back the same bytes.

Reading follows the reference: blank lines are skipped and lines of another ``type``
ignored. Unlike the reference, which loads a line with missing fields and fails later, a
line that is not a well-formed entity or relation is refused with its line number.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from relaybaton.errors import GraphError, GraphFileError
from relaybaton.memory._store import GraphStore, GraphTransaction, entity_from_row
from relaybaton.memory._types import Entity, Provenance, Relation

__all__ = [
    "dumps_memory_file",
    "export_memory_file",
    "import_memory_file",
    "loads_memory_file",
    "write_memory_file",
]

# Python keeps an unpaired surrogate as one code point; JSON.stringify escapes it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# JavaScript's String.prototype.trim strips these (WhiteSpace and LineTerminator).
_JS_SPACE = " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"  # noqa: E501 - one literal set


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _json(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _field(item: dict[str, Any], key: str, source: str, line: int) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        got = "nothing" if value is None and key not in item else f"`{type(value).__name__}`"
        raise GraphFileError(source, line, f"Expected `str`, got {got} - at `$.{key}`")
    return value


def _observations(item: dict[str, Any], source: str, line: int) -> tuple[str, ...]:
    value = item.get("observations")
    if not isinstance(value, list):
        got = "nothing" if "observations" not in item else f"`{type(value).__name__}`"
        raise GraphFileError(source, line, f"Expected `array`, got {got} - at `$.observations`")
    for i, content in enumerate(value):
        if not isinstance(content, str):
            raise GraphFileError(
                source,
                line,
                f"Expected `str`, got `{type(content).__name__}` - at `$.observations[{i}]`",
            )
    return tuple(value)


def loads_memory_file(
    text: str, *, source: str = "<memory file>"
) -> tuple[list[Entity], list[Relation]]:
    """Parse a memory file's text into its entities and relations, in file order.

    Raises:
        GraphFileError: a line is not JSON, or not a well-formed entity or relation.
    """
    entities: list[Entity] = []
    relations: list[Relation] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip(_JS_SPACE):
            continue
        try:
            item = json.loads(line, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise GraphFileError(source, number, f"not JSON: {exc}") from exc
        if "\\ud" in line.lower() and _LONE_SURROGATE.search(json.dumps(item, ensure_ascii=False)):
            # JSON may escape half of a UTF-16 pair on its own; no database stores that text.
            raise GraphFileError(
                source,
                number,
                "a string holds a lone UTF-16 surrogate (an escaped \\ud800-\\udfff with no "
                "pair), which cannot be stored; remove or pair it",
            )
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "entity":
            entities.append(
                Entity(
                    name=_field(item, "name", source, number),
                    entity_type=_field(item, "entityType", source, number),
                    observations=_observations(item, source, number),
                )
            )
        elif kind == "relation":
            relations.append(
                Relation(
                    from_=_field(item, "from", source, number),
                    to=_field(item, "to", source, number),
                    relation_type=_field(item, "relationType", source, number),
                )
            )
    return entities, relations


def dumps_memory_file(entities: Sequence[Entity], relations: Sequence[Relation]) -> str:
    """Write entities and relations as the reference server writes its file."""
    lines = [
        _json(
            {
                "type": "entity",
                "name": e.name,
                "entityType": e.entity_type,
                "observations": list(e.observations),
            }
        )
        for e in entities
    ]
    lines.extend(
        _json({"type": "relation", "from": r.from_, "to": r.to, "relationType": r.relation_type})
        for r in relations
    )
    return "\n".join(lines)


def write_memory_file(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file beside it, then a rename."""
    target = Path(path)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


async def import_memory_file(
    store: GraphStore,
    path: str | Path,
    *,
    namespace: str = "default",
    replace: bool = False,
) -> tuple[int, int]:
    """Load a memory file into ``namespace`` exactly as it is; return the counts.

    The file's graph is copied as is, duplicates and relations to missing entities
    included, whatever the compatibility mode, so that exporting it gives the same bytes.
    Imported observations carry no provenance.

    Raises:
        GraphFileError: the file is malformed; nothing is imported.
        GraphError: the namespace holds a graph already and ``replace`` is false.
    """
    source = str(path)
    raw = await anyio.Path(path).read_bytes()
    entities, relations = loads_memory_file(raw.decode("utf-8", errors="replace"), source=source)
    unknown = Provenance()

    def operation(tx: GraphTransaction) -> tuple[int, int]:
        if replace:
            tx.clear()
        elif tx.count() != (0, 0):
            n_entities, n_relations = tx.count()
            raise GraphError(
                f"namespace {namespace!r} already holds {n_entities} entities and "
                f"{n_relations} relations; import into an empty namespace or pass "
                "replace=True (--replace) to overwrite it"
            )
        for entity in entities:
            entity_id = tx.insert_entity(entity.name, entity.entity_type)
            tx.insert_observations(entity_id, entity.observations, unknown)
        for relation in relations:
            tx.insert_relation(relation)
        return len(entities), len(relations)

    return await store.run(namespace, operation)


async def export_memory_file(store: GraphStore, *, namespace: str = "default") -> str:
    """Return the graph of ``namespace`` as the text of a memory file."""

    def operation(tx: GraphTransaction) -> str:
        rows = tx.entities()
        observations = tx.observations([r.id for r in rows])
        return dumps_memory_file([entity_from_row(r, observations) for r in rows], tx.relations())

    return await store.run(namespace, operation, readonly=True)
