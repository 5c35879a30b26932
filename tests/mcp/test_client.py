"""The MCP client against the reference memory server, run for real over stdio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relaybaton.actors import Agent, ToolCallEvent, ToolContext, open_runtime
from relaybaton.adapters import ToolResultMessage
from relaybaton.errors import ConfigError, ToolArgumentsError, ToolError
from relaybaton.flow import open_flow, parse_flow
from relaybaton.mcp import open_mcp_tools
from relaybaton.mcp._client import exposed_tool_name
from relaybaton.testing import FakeClock, ScriptedModel, tool_call

pytestmark = pytest.mark.anyio

CONTEXT = ToolContext(conversation_id="c", agent="a", call_id="k")


async def test_the_reference_servers_tools_are_listed_called_and_refuse_in_its_words(
    reference_server: Path, tmp_path: Path
) -> None:
    memory_file = tmp_path / "memory.jsonl"
    command = ["node", str(reference_server)]
    async with open_mcp_tools(
        "ref", command=command, env={"MEMORY_FILE_PATH": str(memory_file)}
    ) as tools:
        assert sorted(tools) == sorted(
            [
                "add_observations",
                "create_entities",
                "create_relations",
                "delete_entities",
                "delete_observations",
                "delete_relations",
                "open_nodes",
                "read_graph",
                "search_nodes",
            ]
        )
        search = tools["search_nodes"]
        assert search.name == "ref_search_nodes"
        assert search.spec.parameters["required"] == ["query"]
        with pytest.raises(
            ToolArgumentsError, match=r"Expected `string`, got `integer` - at `\$.query`"
        ):
            search.parse('{"query": 3}')
        entity = {"name": "ann", "entityType": "person", "observations": ["prefers email"]}
        await tools["create_entities"].invoke(json.dumps({"entities": [entity]}), CONTEXT)
        found = json.loads(await search.invoke('{"query": "EMAIL"}', CONTEXT))
        assert [e["name"] for e in found["entities"]] == ["ann"]
        with pytest.raises(ToolError, match=r"^Entity with name Nobody not found$"):
            await tools["add_observations"].invoke(
                '{"observations": [{"entityName": "Nobody", "contents": ["x"]}]}', CONTEXT
            )
    assert json.loads(memory_file.read_text().splitlines()[0])["name"] == "ann"


async def test_an_agent_calls_an_external_servers_tool_through_the_ordinary_tool_path(
    reference_server: Path, tmp_path: Path
) -> None:
    env = {"MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")}
    async with open_mcp_tools("ref", command=["node", str(reference_server)], env=env) as tools:
        agent = Agent(name="helper", model="m", tools=tuple(tools.values()))
        entity = {"name": "ann", "entityType": "person", "observations": []}
        model = ScriptedModel(
            [
                [
                    tool_call("ref_create_entities", "c1", entities=[entity]),
                    tool_call("ref_open_nodes", "c2", names="ann"),  # not an array: refused
                ],
                tool_call(
                    "ref_add_observations",
                    "c3",
                    observations=[{"entityName": "bob", "contents": ["x"]}],
                ),
                "done",
            ]
        )
        async with open_runtime(agent, models=model, clock=FakeClock()) as runtime:
            result = await runtime.send("conv", "remember ann")
            conversation = runtime.conversation("conv")
    assert result.text == "done"
    assert conversation is not None
    outcomes = {
        m.call_id: (m.is_error, m.content)
        for m in conversation.transcript
        if isinstance(m, ToolResultMessage)
    }
    assert outcomes["c1"][0] is False
    assert outcomes["c2"][0] is True
    assert "Expected `array`, got `string` - at `$.names`" in outcomes["c2"][1]
    assert outcomes["c3"] == (True, "Entity with name bob not found")
    traced = [e for e in conversation.events or [] if isinstance(e, ToolCallEvent)]
    assert sorted(e.tool for e in traced) == [
        "ref_add_observations",
        "ref_create_entities",
        "ref_open_nodes",
    ]


async def test_a_flow_attaches_an_mcp_servers_tools_by_star_or_by_name(
    reference_server: Path, tmp_path: Path
) -> None:
    text = f"""
[models.general]
model = "simulated:general"

[mcp.ref]
command = ["node", "{reference_server}"]
env = {{ MEMORY_FILE_PATH = "{tmp_path / "memory.jsonl"}" }}

[[agents]]
name = "all"
model = "general"
tools = ["mcp.ref.*"]

[[agents]]
name = "reader"
model = "general"
tools = ["mcp.ref.read_graph"]
"""
    flow = parse_flow(text, str(tmp_path / "flow.toml"))
    async with open_flow(flow, clock=FakeClock()) as runtime:
        assert len(runtime.agents["all"].tools) == 9
        assert [t.name for t in runtime.agents["reader"].tools] == ["ref_read_graph"]
    misspelt = parse_flow(text.replace("mcp.ref.read_graph", "mcp.ref.read_grph"), flow.source)
    with pytest.raises(
        ConfigError, match=r'has no tool "read_grph" \(did you mean "mcp.ref.read_graph"\?\)'
    ):
        async with open_flow(misspelt, clock=FakeClock()):
            pass


async def test_a_server_that_cannot_start_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MCP server 'gone': cannot start"):
        async with open_mcp_tools("gone", command=[str(tmp_path / "no-such-program")]):
            pass


def test_exposed_names_fit_what_providers_accept() -> None:
    assert exposed_tool_name("my.server", "read file!") == "my_server_read_file_"
    assert len(exposed_tool_name("s" * 40, "t" * 40)) == 64
