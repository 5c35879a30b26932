"""Model overrides never leave a simulated model to stand in for a real one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relaybaton.flow._overrides import dropped_stand_ins, kept_fallbacks

providers = st.sampled_from(["simulated", "openai", "anthropic", "gemini", "openai-compatible"])
model_ids = st.builds(lambda p, m: f"{p}:{m}", providers, st.sampled_from(["a", "b", "c"]))
slots = st.sampled_from(["general", "reasoning", "vision"])


@given(st.dictionaries(slots, st.lists(model_ids, max_size=4)), st.dictionaries(slots, model_ids))
def test_a_real_override_keeps_no_simulated_fallback_and_drops_nothing_else(
    fallbacks: dict[str, list[str]], overrides: dict[str, str]
) -> None:
    dropped = dropped_stand_ins(fallbacks, overrides)
    for slot, listed in fallbacks.items():
        kept = kept_fallbacks(slot, listed, overrides)
        override = overrides.get(slot)
        if override is not None and not override.startswith("simulated:"):
            assert not any(f.startswith("simulated:") for f in kept)
        else:
            assert kept == listed  # a simulated override, or none: the flow as written
        assert [f for f in listed if not f.startswith("simulated:")] == [
            f for f in kept if not f.startswith("simulated:")
        ]
        assert sorted(kept + dropped.get(slot, [])) == sorted(listed)


def test_an_override_naming_a_simulated_model_keeps_the_simulated_fallbacks() -> None:
    fallbacks = ["simulated:general-fallback"]
    assert kept_fallbacks("general", fallbacks, {"general": "simulated:other"}) == fallbacks
    assert kept_fallbacks("general", fallbacks, {"general": "openai:gpt-5.2"}) == []
    assert kept_fallbacks("general", fallbacks, {}) == fallbacks
