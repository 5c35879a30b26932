"""The seed's four levels in examples/multimodel.toml: rules, cost, limits, and validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaybaton.actors.routing import ModelSlot, TaskFeatures
from relaybaton.cli import main
from relaybaton.flow._compose import close_slots, create_slots
from relaybaton.flow._file import load_flow, parse_flow
from relaybaton.runtime import MonotonicClock

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multimodel.toml"
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "MINIMAX_API_KEY")


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in KEYS:
        monkeypatch.setenv(variable, f"test-{variable.lower()}")
    for variable in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GEMINI_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)


def test_validate_accepts_the_example_with_its_four_keys(
    keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(EXAMPLE)]) == 0
    assert ": ok — flow 'multimodel'" in capsys.readouterr().out


def test_validate_refuses_what_run_refuses_a_missing_key_named(
    keys: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MINIMAX_API_KEY")
    assert main(["validate", str(EXAMPLE)]) == 2
    assert "MINIMAX_API_KEY" in capsys.readouterr().err
    assert main(["validate", str(EXAMPLE), "--model", "*=simulated:general"]) == 0


def test_validate_refuses_an_openai_compatible_model_without_a_base_url(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    text = EXAMPLE.read_text().replace('base_url = "https://api.minimax.io/v1"\n', "")
    flow = tmp_path / "flow.toml"
    flow.write_text(text)
    assert main(["validate", str(flow)]) == 2
    assert "an openai-compatible model needs a base URL" in capsys.readouterr().err


def test_the_seeds_shadowed_cost_branch_is_refused_naming_both_rules(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = EXAMPLE.read_text()
    seed_order = text.replace(
        '  { when = "cost > 15", use = "domain" },\n  { when = "cost > 5", use = "general" },\n',
        '  { when = "cost > 5", use = "general" },\n  { when = "cost > 15", use = "domain" },\n',
    )
    assert seed_order != text
    flow = tmp_path / "seed.toml"
    flow.write_text(seed_order)
    assert main(["validate", str(flow)]) == 2
    err = capsys.readouterr().err
    assert (
        "models.assistant.routing.rules[1]: can never match: rules[0] (cost > 5) already "
        "takes every call with cost > 15"
    ) in err


async def test_each_level_has_its_own_limits_and_the_rules_send_calls_where_the_seed_says(
    keys: None,
) -> None:
    flow = load_flow(EXAMPLE)
    slots, board = create_slots(flow, clock=MonotonicClock())
    try:
        slot = slots["assistant"]
        assert isinstance(slot, ModelSlot)
        assert board is not None
        assert slot.router is not None
        limits = {c.name: board.breaker(c.adapter.name).policy.p95_s for c in slot.candidates}
        assert limits == {"general": 0.5, "reasoning": 0.5, "multimodal": 0.8, "domain": 1.5}
        choose = slot.router.choose
        assert choose(TaskFeatures(complexity=2, expected_tokens=500)).candidate == "general"
        assert choose(TaskFeatures(complexity=6, expected_tokens=500)).candidate == "reasoning"
        vision = TaskFeatures(complexity=9, needs_vision=True, expected_tokens=500)
        assert choose(vision).candidate == "multimodal"
        assert choose(TaskFeatures(complexity=9, expected_tokens=500)).candidate == "domain"
        # Cost on level 1's prices: 20k tokens ≈ 10 cents, 40k ≈ 20 cents.
        assert choose(TaskFeatures(complexity=6, expected_tokens=20_000)).candidate == "general"
        assert choose(TaskFeatures(complexity=6, expected_tokens=40_000)).candidate == "domain"
    finally:
        await close_slots(slots)


def test_the_example_parses_and_names_four_providers() -> None:
    flow = parse_flow(EXAMPLE.read_text(), str(EXAMPLE))
    routing = flow.models["assistant"].routing
    assert routing is not None
    providers = [c.model.partition(":")[0] for c in routing.candidates]
    assert providers == ["openai", "anthropic", "gemini", "openai-compatible"]
