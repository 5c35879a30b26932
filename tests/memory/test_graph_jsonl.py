"""The reference's JSONL file: parsing, byte-identical writing, import and export."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaybaton.errors import GraphError, GraphFileError
from relaybaton.memory import (
    Entity,
    GraphStore,
    KnowledgeGraph,
    Relation,
    export_memory_file,
    import_memory_file,
)
from relaybaton.memory._jsonl import dumps_memory_file, loads_memory_file
from relaybaton.memory._sqlite import SqliteGraphStore

# Text as it occurs in memory files: any code point, control characters, quotes,
# non-ASCII, astral characters and unpaired surrogates (which JSON.stringify escapes).
# Every code point but lone surrogates, which a file may escape but no database can store
# (the importer refuses them: see the test below).
texts = st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=8)
entities = st.builds(
    Entity,
    name=texts,
    entity_type=texts,
    observations=st.lists(texts, max_size=3).map(tuple),
)
relations = st.builds(Relation, from_=texts, to=texts, relation_type=texts)
Graph = tuple[list[Entity], list[Relation]]
graphs = st.tuples(st.lists(entities, max_size=6), st.lists(relations, max_size=6))

SAMPLE = (
    '{"type":"entity","name":"Zoë","entityType":"person","observations":["likes \\"tea\\"","🙂"]}\n'
    '{"type":"entity","name":"Zoë","entityType":"dup","observations":[]}\n'
    '{"type":"relation","from":"Zoë","to":"Nobody","relationType":"knows"}'
)


def test_parsing_reads_entities_then_relations_and_ignores_unknown_types() -> None:
    text = SAMPLE + '\n\n   \n{"type":"note","x":1}\n'
    parsed_entities, parsed_relations = loads_memory_file(text)
    assert [e.name for e in parsed_entities] == ["Zoë", "Zoë"]
    assert parsed_relations == [Relation(from_="Zoë", to="Nobody", relation_type="knows")]


def test_writing_matches_the_reference_byte_for_byte() -> None:
    assert dumps_memory_file(*loads_memory_file(SAMPLE)) == SAMPLE


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{oops", "<memory file>:2: not JSON: Expecting property name"),
        ('{"type":"entity","name":1}', "<memory file>:2: Expected `str`, got `int` - at `$.name`"),
        (
            '{"type":"entity","name":"a","entityType":"t"}',
            "<memory file>:2: Expected `array`, got nothing - at `$.observations`",
        ),
        (
            '{"type":"relation","from":"a","to":"b"}',
            "<memory file>:2: Expected `str`, got nothing - at `$.relationType`",
        ),
        ("NaN", "<memory file>:2: not JSON: NaN is not JSON"),
    ],
)
def test_malformed_lines_are_refused_with_their_line_number(line: str, message: str) -> None:
    with pytest.raises(GraphFileError) as caught:
        loads_memory_file('{"type":"relation","from":"a","to":"b","relationType":"r"}\n' + line)
    assert str(caught.value).startswith(message)
    assert caught.value.line == 2


@settings(max_examples=60, deadline=None)
@given(graphs)
def test_writing_then_parsing_round_trips_any_graph(graph: Graph) -> None:
    text = dumps_memory_file(*graph)
    assert loads_memory_file(text) == graph
    assert dumps_memory_file(*loads_memory_file(text)) == text


@pytest.mark.skipif(shutil.which("node") is None, reason="node is needed to run JSON.stringify")
@settings(max_examples=15, deadline=None)
@given(graphs)
def test_writing_equals_javascript_json_stringify(graph: Graph) -> None:
    text = dumps_memory_file(*graph)
    # Hand node the graph with every string escaped to ASCII, so the pipe carries no
    # surrogates; node writes the file as the reference does.
    payload = json.dumps(
        {
            "e": [[e.name, e.entity_type, list(e.observations)] for e in graph[0]],
            "r": [[r.from_, r.to, r.relation_type] for r in graph[1]],
        }
    )
    script = (
        "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const g=JSON.parse(s);"
        "const lines=[...g.e.map(([n,t,o])=>JSON.stringify({type:'entity',name:n,entityType:t,"
        "observations:o})),...g.r.map(([f,t,k])=>JSON.stringify({type:'relation',from:f,to:t,"
        "relationType:k}))];process.stdout.write(JSON.stringify(lines.join('\\n')))})"
    )
    done = subprocess.run(
        ["node", "-e", script], input=payload, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == text


@pytest.mark.anyio
async def test_import_then_export_is_byte_identical_and_keeps_released_oddities(
    tmp_path: Path, store: GraphStore
) -> None:
    source = tmp_path / "memory.jsonl"
    source.write_text(SAMPLE, encoding="utf-8")
    assert await import_memory_file(store, source) == (2, 1)
    assert await export_memory_file(store) == SAMPLE
    # The strict graph reads what was imported, duplicates included.
    assert len((await KnowledgeGraph(store).read_graph()).entities) == 2


@pytest.mark.anyio
async def test_import_refuses_a_non_empty_namespace_unless_replacing(
    tmp_path: Path, store: GraphStore
) -> None:
    source = tmp_path / "memory.jsonl"
    source.write_text(SAMPLE, encoding="utf-8")
    await import_memory_file(store, source)
    with pytest.raises(GraphError, match="namespace 'default' already holds 2 entities and 1"):
        await import_memory_file(store, source)
    assert await import_memory_file(store, source, replace=True) == (2, 1)
    assert await export_memory_file(store) == SAMPLE
    assert await import_memory_file(store, source, namespace="other") == (2, 1)


@pytest.mark.anyio
# tmp_path is only a folder; each example overwrites the one file in it.
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(graph=graphs)
async def test_import_export_round_trip_is_byte_identical(
    tmp_path: Path, graph: tuple[list[Entity], list[Relation]]
) -> None:
    text = dumps_memory_file(*graph)
    source = tmp_path / "round.jsonl"
    source.write_text(text, encoding="utf-8")  # lone surrogates are escaped: plain UTF-8
    db = SqliteGraphStore(":memory:")
    try:
        await import_memory_file(db, source)
        assert await export_memory_file(db) == text
    finally:
        await db.aclose()


@pytest.mark.anyio
async def test_import_refuses_a_lone_surrogate_with_the_line_and_a_fix(
    tmp_path: Path, store: GraphStore
) -> None:
    source = tmp_path / "memory.jsonl"
    source.write_text(
        '{"type":"entity","name":"ok","entityType":"t","observations":[]}\n'
        '{"type":"entity","name":"\\ud800","entityType":"t","observations":[]}',
        encoding="utf-8",
    )
    with pytest.raises(GraphError, match=r"memory.jsonl:2: a string holds a lone UTF-16 surrogate"):
        await import_memory_file(store, source)
    assert await export_memory_file(store) == ""
