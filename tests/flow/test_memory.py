"""Memory in flow files: validation with paths and suggestions, and agents remembering users."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from relaybaton.cli import main
from relaybaton.errors import FlowError
from relaybaton.flow import load_flow, open_flow, parse_flow
from relaybaton.testing import FakeClock
from tests._postgres import PG_DSN, drop_schema, require_postgres, throwaway_schema

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODELS = """
[models.general]
model = "simulated:general"
latency_ms = 0
"""


def problems(text: str) -> list[str]:
    with pytest.raises(FlowError) as caught:
        parse_flow(text, "flow.toml")
    return [str(p) for p in caught.value.problems]


def test_a_misspelt_memory_tool_names_its_path_and_suggests_the_tool() -> None:
    text = MODELS + (
        '[[agents]]\nname = "triage"\nmodel = "general"\n'
        'tools = ["memory.search_nodes", "memory.open_nodes", "memory.serch_nodes"]\n'
    )
    assert problems(text) == [
        'agents[0].tools[2]: no memory tool "memory.serch_nodes" '
        '(did you mean "memory.search_nodes"?)'
    ]


def test_bad_memory_access_compat_and_mcp_references_are_all_reported() -> None:
    text = MODELS + (
        '[memory]\ncompat = "strct"\n\n'
        '[mcp.files]\ncommand = ["node", "server.js"]\nurl = "http://127.0.0.1:1/mcp"\n\n'
        '[mcp.web]\nurl = "ftp://example"\n\n'
        '[[agents]]\nname = "triage"\nmodel = "general"\nmemory = "read-wrte"\n'
        'tools = ["mcp.flies.*", "mcp.files"]\n'
    )
    assert problems(text) == [
        'memory.compat: "strct" is not a compatibility mode; use one of strict, released '
        '(did you mean "strict"?)',
        'mcp.files: give either command = ["program", "arg", ...] (stdio) or '
        'url = "http://host:port/mcp" (streamable HTTP)',
        'mcp.web.url: "ftp://example" is not an http:// or https:// URL',
        'agents[0].memory: "read-wrte" is not a memory access; use "read" or "read-write" '
        '(did you mean "read-write"?)',
        'agents[0].tools[0]: no MCP server named "flies" (did you mean "files"?); '
        "add an [mcp.flies] table",
        'agents[0].tools[1]: "mcp.files" should be "mcp.<server>.<tool>" or "mcp.<server>.*"',
    ]


def test_an_unknown_field_of_an_mcp_table_is_named_with_the_allowed_fields() -> None:
    text = MODELS + '[mcp.files]\ncomand = ["node"]\n\n[[agents]]\nname = "a"\nmodel = "general"\n'
    (problem,) = problems(text)
    assert problem.startswith('mcp.files: unknown field `comand` (did you mean "command"?)')


async def test_read_access_gives_only_the_read_tools_named_for_models(tmp_path: Path) -> None:
    text = MODELS + (
        f'[memory]\nstore = "{tmp_path / "m.db"}"\n\n'
        '[[agents]]\nname = "reader"\nmodel = "general"\nmemory = "read"\n'
        'tools = ["memory.add_observations"]\n'
    )
    flow = parse_flow(text, str(tmp_path / "flow.toml"))
    async with open_flow(flow, clock=FakeClock()) as runtime:
        names = [t.name for t in runtime.agents["reader"].tools]
    assert names == [
        "memory_add_observations",
        "memory_read_graph",
        "memory_search_nodes",
        "memory_open_nodes",
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def memory_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Where a flow's ``[memory] store`` points: a SQLite file, or a PostgreSQL URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "memory.db")
        return
    require_postgres()
    from relaybaton.memory import _factory as _graph_factory

    schema = throwaway_schema()
    # The composition root uses the default schema; this test's goes in its place.
    monkeypatch.setattr(_graph_factory, "GRAPH_SCHEMA", schema)
    try:
        yield PG_DSN
    finally:
        drop_schema(schema)


async def test_a_second_conversation_of_the_same_user_finds_the_stored_preference(
    memory_store: str,
) -> None:
    flow = load_flow(EXAMPLES / "customer_service.toml")
    flow.memory.store = memory_store
    async with open_flow(flow) as runtime:
        first = await runtime.send(
            "c1", "Hello! Please contact me by phone, not email.", user="ann"
        )
        assert first.error is None
        assert "I will remember that: Please contact me by phone, not email" in first.text
    # A new runtime: the preference comes back from the store, not from the process.
    async with open_flow(flow) as runtime:
        again = await runtime.send("c2", "What are my preferences?", user="ann")
        stranger = await runtime.send("c3", "What are my preferences?", user="bob")
        nobody = await runtime.send("c4", "What are my preferences?")
    assert again.text == (
        "From our earlier conversations I remember: Please contact me by phone, not email."
    )
    assert stranger.text == "I have no saved preferences for you yet."
    assert nobody.text == "I have no saved preferences for you yet."


async def test_the_example_keeps_routing_billing_questions_with_memory_attached(
    tmp_path: Path,
) -> None:
    flow = load_flow(EXAMPLES / "customer_service.toml")
    flow.memory.store = str(tmp_path / "memory.db")
    async with open_flow(flow) as runtime:
        result = await runtime.send("c1", "I was double charged on my invoice", user="ann")
    assert result.error is None
    assert [r.agent for r in result.replies] == ["billing"]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    # The CLI points structlog at the (captured) stderr of its test; later tests must not
    # log into that closed stream.
    config = structlog.get_config()
    yield
    structlog.configure(**config)


@pytest.mark.usefixtures("restored_logging")
def test_relaybaton_run_remembers_per_user_next_to_the_flow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("customer_service.toml", "customer_service_tools.py"):
        (tmp_path / name).write_text((EXAMPLES / name).read_text(encoding="utf-8"), "utf-8")
    flow = str(tmp_path / "customer_service.toml")
    assert main(["run", flow, "--user", "ann", "-m", "I prefer email, thanks"]) == 0
    assert (tmp_path / ".relaybaton" / "memory.db").is_file()
    capsys.readouterr()
    assert main(["run", flow, "--user", "ann", "-m", "What are my preferences?"]) == 0
    assert "I remember: I prefer email, thanks." in capsys.readouterr().out
