"""Flow files: every problem is reported with its path and a fix; the examples validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaybaton.errors import FlowError
from relaybaton.flow import load_flow, parse_flow
from relaybaton.flow._compose import build_agents

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

MODELS = """
[models.general]
model = "simulated:general"
"""


def problems(text: str, source: str = "flow.toml") -> list[str]:
    with pytest.raises(FlowError) as caught:
        parse_flow(text, source)
    return [str(p) for p in caught.value.problems]


def test_a_handoff_to_a_misspelt_agent_names_the_path_and_suggests_the_name() -> None:
    text = (
        MODELS
        + """
[[agents]]
name = "triage"
model = "general"
handoffs = ["refund"]

[[agents]]
name = "refund"
model = "general"
handoffs = ["refnd"]
"""
    )
    with pytest.raises(FlowError) as caught:
        parse_flow(text, "flow.toml")
    assert str(caught.value) == (
        "flow.toml: 1 problem(s) in the flow\n"
        '  agents[1].handoffs[0]: no agent named "refnd" (did you mean "refund"?)'
    )
    assert caught.value.source == "flow.toml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "agnets = []\n" + MODELS,
            'unknown field `agnets` (did you mean "agents"?); '
            "allowed: flow, models, tools, agents, prices, supervisor, memory, mcp, guardrails, "
            "evals, variants, cluster",
        ),
        (
            '[flow]\nentri = "a"\n',
            'flow: unknown field `entri` (did you mean "entry"?); allowed: name, description, '
            "entry, max_turns, max_handoffs",
        ),
        (
            MODELS + '\n[[agents]]\nname = "a"\nmodel = "general"\ninstrucions = "x"\n',
            'agents[0]: unknown field `instrucions` (did you mean "instructions"?); allowed: '
            "name, model, instructions, description, tools, handoffs, max_turns, memory, "
            "output_schema",
        ),
        (
            '[models.fast]\nmodel = "simulated:fast"\nlatency = 3\n',
            'models.fast: unknown field `latency` (did you mean "latency_ms"?); allowed: model, '
            "base_url, api_key_env, latency_ms, latency_sigma, error_rate, price_in_per_1k, "
            "price_out_per_1k, vision, context_tokens, seed, fallbacks, routing, rollout",
        ),
        (
            '[tools.lookup]\nfunctin = "tools.py:lookup"\n',
            'tools.lookup: unknown field `functin` (did you mean "function"?); allowed: '
            "function, description, needs_approval, approval_timeout_s, retry_safe, rules",
        ),
        (
            MODELS + '[[agents]]\nname = "a"\nmodel = "general"\n'
            'handoffs = [{ agent = "b", return_to = true }]\n',
            'agents[0].handoffs[0]: unknown field `return_to` (did you mean "return_to_sender"?); '
            "allowed: agent, description, tool_name, return_to_sender, lease_turns, history",
        ),
        (
            MODELS + '[[agents]]\nname = "a"\nmodel = "general"\n'
            'tools = [{ agent = "b", nme = "ask_b" }]\n',
            'agents[0].tools[0]: unknown field `nme` (did you mean "name"?); allowed: agent, '
            "name, description, timeout_s",
        ),
    ],
)
def test_an_unknown_field_is_named_with_a_suggestion_and_the_allowed_fields(
    text: str, expected: str
) -> None:
    assert problems(text) == [expected]


def test_a_value_of_the_wrong_type_names_its_path_and_the_expected_type() -> None:
    text = MODELS + '[[agents]]\nname = "a"\nmodel = "general"\nmax_turns = "ten"\n'
    assert problems(text) == ["agents[0].max_turns: expected `int`, got `str`"]
    text = '[models.a]\nmodel = "simulated:a"\n[models.b]\nlatency_ms = "slow"\nmodel = "x:y"\n'
    assert problems(text) == ["models.b.latency_ms: expected `float`, got `str`"]
    assert problems('[models.a]\nmodel = "simulated:a"\n[models.b]\nseed = 1\n') == [
        "models.b: object missing required field `model`"
    ]


def test_bad_toml_is_a_flow_error_with_the_line_and_column() -> None:
    assert problems("[[agents]\nname = 1") == [
        "not valid TOML: Expected ']]' at the end of an array declaration (at line 1, column 9)"
    ]


def test_a_missing_file_is_a_flow_error_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(FlowError) as caught:
        load_flow(missing)
    assert str(caught.value) == f"{missing}: 1 problem(s) in the flow\n  no such file"
    with pytest.raises(FlowError, match="cannot read it"):
        load_flow(tmp_path)


def test_an_unknown_model_slot_suggests_the_slot_and_the_table_to_add() -> None:
    text = MODELS + '[[agents]]\nname = "a"\nmodel = "genral"\n'
    assert problems(text) == [
        'agents[0].model: no model slot named "genral" (did you mean "general"?); '
        "add a [models.genral] table"
    ]


def test_a_bad_model_id_lists_the_providers() -> None:
    text = '[models.general]\nmodel = "gpt-4"\n[models.other]\nmodel = "azure:gpt"\n'
    text += '[[agents]]\nname = "a"\nmodel = "general"\n'
    tail = (
        " is not a model id; write provider:model with a provider among simulated, openai, "
        "openai-compatible, anthropic, gemini (e.g. simulated:general)"
    )
    assert problems(text) == [
        f'models.general.model: "gpt-4"{tail}',
        f'models.other.model: "azure:gpt"{tail}',
    ]


def test_a_bad_history_filter_lists_the_filters() -> None:
    text = (
        MODELS
        + """
[[agents]]
name = "a"
model = "general"
handoffs = [{ agent = "b", history = "summary", lease_turns = 0 }]
[[agents]]
name = "b"
model = "general"
"""
    )
    assert problems(text) == [
        'agents[0].handoffs[0].history: "summary" is not a history filter; use one of full, '
        "no_tools, last_user_message",
        "agents[0].handoffs[0].lease_turns: must be at least 1",
    ]


def test_an_agent_cannot_hand_off_to_or_call_itself() -> None:
    text = MODELS + '[[agents]]\nname = "a"\nmodel = "general"\nhandoffs = ["a"]\n'
    text += 'tools = [{ agent = "a" }]\n'
    assert problems(text) == [
        'agents[0].handoffs[0]: agent "a" cannot hand off to itself',
        'agents[0].tools[0].agent: agent "a" cannot call itself as a tool',
    ]


def test_tool_functions_that_cannot_be_found_say_why_and_how_to_fix_it(tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text("def lookup_order(order_id: str) -> str:\n    return ''\n")
    (tmp_path / "broken.py").write_text("raise RuntimeError('import-time failure')\n")
    flow = tmp_path / "flow.toml"
    flow.write_text(
        MODELS
        + """
[tools.a]
function = "nofile.py:lookup"
[tools.b]
function = "tools.py:lookup_ordr"
[tools.c]
function = "json:dumsp"
[tools.d]
function = "no_such_module_xyz:f"
[tools.e]
function = "justaname"
[tools.f]
function = "broken.py:f"
[tools.ok]
function = "tools.py:lookup_order"

[[agents]]
name = "a"
model = "general"
tools = ["ok", "oops", "reviewer"]
[[agents]]
name = "reviewer"
model = "general"
"""
    )
    with pytest.raises(FlowError) as caught:
        load_flow(flow)
    assert [str(p) for p in caught.value.problems] == [
        "tools.a.function: no file nofile.py next to the flow "
        f"(looked for {tmp_path / 'nofile.py'})",
        'tools.b.function: no function "lookup_ordr" in tools.py (did you mean "lookup_order"?)',
        'tools.c.function: no function "dumsp" in json (did you mean "dump"?)',
        "tools.d.function: cannot import module no_such_module_xyz: No module named "
        "'no_such_module_xyz'",
        'tools.e.function: "justaname" should be "file.py:function" (next to the flow) or '
        '"package.module:function"',
        "tools.f.function: broken.py failed to load: RuntimeError: import-time failure",
        'agents[0].tools[1]: no tool named "oops"; add a [tools.oops] table',
        'agents[0].tools[2]: no tool named "reviewer" (to use an agent as a tool, write '
        '{ agent = "reviewer" }); add a [tools.reviewer] table',
    ]


def test_every_problem_is_reported_at_once() -> None:
    text = (
        MODELS
        + """
[flow]
entry = "triag"
max_turns = 0

[[agents]]
name = "triage"
model = "general"
[[agents]]
name = "triage"
model = "general"
max_turns = 0
[[agents]]
name = "9lives"
model = "general"
tools = [{ agent = "ghost" }]
"""
    )
    assert problems(text) == [
        'flow.entry: no agent named "triag" (did you mean "triage"?)',
        "flow.max_turns: must be at least 1, got 0",
        'agents[1].name: agent "triage" is defined twice',
        "agents[1].max_turns: must be at least 1, got 0",
        "agents[2].name: \"9lives\" must start with a letter and use only letters, digits, '_' "
        "and '-'",
        'agents[2].tools[0].agent: no agent named "ghost"',
    ]


def test_a_flow_without_agents_says_what_to_add() -> None:
    assert problems(MODELS) == ["agents: a flow needs at least one [[agents]] entry"]


@pytest.mark.parametrize("name", ["customer_service.toml", "code_review.toml"])
def test_the_examples_validate_and_build(name: str) -> None:
    flow = load_flow(EXAMPLES / name)
    agents = build_agents(flow)
    assert flow.entry in agents
    assert set(agents) == {a.name for a in flow.agents}


def test_the_entry_defaults_to_the_first_agent() -> None:
    flow = parse_flow(MODELS + '[[agents]]\nname = "first"\nmodel = "general"\n')
    assert flow.entry == "first"
