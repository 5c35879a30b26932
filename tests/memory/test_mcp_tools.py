"""The tool layer without a transport: declarations, argument errors, answers."""

from __future__ import annotations

import builtins
import json
from typing import Any

import pytest

from relaybaton.errors import ConfigError
from relaybaton.memory import KnowledgeGraph
from relaybaton.memory._mcp_tools import TOOLS, call_memory_tool

pytestmark = pytest.mark.anyio


def test_nine_tools_are_declared_with_reference_required_fields() -> None:
    assert list(TOOLS) == [
        "create_entities",
        "create_relations",
        "add_observations",
        "delete_entities",
        "delete_observations",
        "delete_relations",
        "read_graph",
        "search_nodes",
        "open_nodes",
    ]
    declared = TOOLS["create_entities"].declaration()
    entity = declared["inputSchema"]["properties"]["entities"]["items"]
    assert entity["required"] == ["name", "entityType", "observations"]
    assert "additionalProperties" not in entity
    assert declared["outputSchema"]["additionalProperties"] is False


async def test_answer_text_is_indented_json_with_raw_non_ascii(strict: KnowledgeGraph) -> None:
    outcome = await call_memory_tool(
        strict,
        "create_entities",
        {"entities": [{"name": "Zoë", "entityType": "t", "observations": []}]},
    )
    assert outcome.structured == {
        "entities": [{"name": "Zoë", "entityType": "t", "observations": []}]
    }
    assert outcome.text == (
        '[\n  {\n    "name": "Zoë",\n    "entityType": "t",\n    "observations": []\n  }\n]'
    )
    assert json.loads(outcome.text) == outcome.structured["entities"]


@pytest.mark.parametrize(
    ("name", "arguments", "text"),
    [
        ("nope", {}, "MCP error -32602: Tool nope not found"),
        (
            "open_nodes",
            None,
            "MCP error -32602: Input validation error: Invalid arguments for tool open_nodes: "
            "Invalid input: expected array, received undefined at names",
        ),
        (
            "create_relations",
            {"relations": [{"from": 1, "to": None}]},
            "MCP error -32602: Input validation error: Invalid arguments for tool create_relations:"
            " Invalid input: expected string, received number at relations[0].from\n"
            "Invalid input: expected string, received null at relations[0].to\n"
            "Invalid input: expected string, received undefined at relations[0].relationType",
        ),
        (
            "add_observations",
            {"observations": [{"entityName": "Nobody", "contents": []}]},
            "Entity with name Nobody not found",
        ),
    ],
)
async def test_failures_are_error_results_with_the_reference_text(
    strict: KnowledgeGraph, name: str, arguments: dict[str, Any] | None, text: str
) -> None:
    outcome = await call_memory_tool(strict, name, arguments)
    assert (outcome.structured, outcome.text, outcome.is_error) == (None, text, True)


def test_missing_mcp_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from relaybaton.mcp import _memory_server as _mcp_memory_server

    real_import = builtins.__import__

    def no_mcp(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "mcp" or name.startswith("mcp."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mcp)
    with pytest.raises(ConfigError, match=r"pip install 'relaybaton\[mcp\]'"):
        _mcp_memory_server.create_memory_server(object())  # type: ignore[arg-type]
