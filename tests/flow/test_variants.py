"""`[variants.<name>]`: versions of a flow in one file, checked and applied."""

from __future__ import annotations

import pytest

from relaybaton.errors import ConfigError, FlowError
from relaybaton.flow import parse_flow
from relaybaton.flow._variants import variant_of

FLOW = """
[models.general]
model = "simulated:general"

[[agents]]
name = "triage"
model = "general"
instructions = "Route the user."

[variants.concise]
models = { general = "simulated:general-v2" }
instructions = { triage = "Route the user in one sentence." }
"""


def test_a_variant_changes_instructions_and_gives_its_models_as_overrides() -> None:
    flow = parse_flow(FLOW)
    variant, overrides = variant_of(flow, "concise")
    assert overrides == {"general": "simulated:general-v2"}
    assert variant.agents[0].instructions == "Route the user in one sentence."
    assert flow.agents[0].instructions == "Route the user."  # the flow as written is kept
    with pytest.raises(ConfigError, match="no variant 'verbose'; its variants: concise"):
        variant_of(flow, "verbose")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'models = { genral = "simulated:x" }',
            'variants.bad.models.genral: no model slot named "genral"',
        ),
        ('models = { general = "gpt" }', 'variants.bad.models.general: "gpt" is not a model id'),
        (
            'instructions = { triag = "x" }',
            'variants.bad.instructions.triag: no agent named "triag"',
        ),
        ("description = 'nothing'", "variants.bad: changes nothing"),
        ("modles = {}", "variants.bad: unknown field `modles`"),
    ],
)
def test_a_bad_variant_is_refused_with_its_path(table: str, message: str) -> None:
    with pytest.raises(FlowError) as caught:
        parse_flow(FLOW + f"\n[variants.bad]\n{table}\n")
    assert message in str(caught.value)
