"""The demo command runs offline, finishes, and its JSON summary has the documented keys."""

from __future__ import annotations

import json

import pytest
import structlog

from relaybaton.cli import main


def test_demo_json_summary_has_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    saved = structlog.get_config()
    try:
        assert main(["demo", "--duration", "5", "--rate", "20", "--json"]) == 0
    finally:
        # The CLI points logging at this test's captured stdout; later tests must not log there.
        structlog.configure(**saved)
    summary = json.loads(capsys.readouterr().out)
    assert summary["conversations"] > 50
    assert summary["failed"] == 0
    assert summary["handoffs"] > 0
    assert 0 < summary["p95_s"] < 5
    assert summary["cost_usd"] > 0
    assert summary["swaps"], "the injected fault should make the supervisor fail over"
    first = summary["swaps"][0]
    assert set(first) == {"at_s", "slot", "from", "to", "reason"}
    assert (first["slot"], first["from"], first["to"]) == (
        "general", "simulated:general", "simulated:general-fallback",
    )  # fmt: skip
