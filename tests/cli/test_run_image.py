"""``run --image PATH`` sends the image with the first message, to a vision-capable model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relaybaton.cli import main

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
FLOW = """
[models.assistant]
model = "simulated:general"

[models.assistant.routing]
rules = [
  { when = "complexity <= 3", use = "general" },
  { when = "complexity <= 7", use = "reasoning" },
  { when = "vision", use = "multimodal" },
  { use = "domain" },
]

[[models.assistant.routing.candidates]]
name = "general"
model = "simulated:general"
vision = false

[[models.assistant.routing.candidates]]
name = "reasoning"
model = "simulated:reasoning"
vision = false

[[models.assistant.routing.candidates]]
name = "multimodal"
model = "simulated:multimodal"
vision = true

[[models.assistant.routing.candidates]]
name = "domain"
model = "simulated:domain"
vision = false

[[agents]]
name = "assistant"
model = "assistant"
"""


def _files(tmp_path: Path, flow: str) -> tuple[str, str]:
    (tmp_path / "flow.toml").write_text(flow)
    (tmp_path / "cat.png").write_bytes(PNG)
    return str(tmp_path / "flow.toml"), str(tmp_path / "cat.png")


def test_an_image_goes_to_the_vision_capable_candidate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow, image = _files(tmp_path, FLOW)
    assert main(["run", flow, "-m", "What is this?", "--image", image, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [call] = [e for e in report["events"] if e["kind"] == "model_call"]
    assert call["route"]["candidate"] == "multimodal"
    assert call["model"] == "simulated:multimodal"


def test_a_slot_without_a_vision_model_refuses_the_image_saying_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow, image = _files(tmp_path, FLOW.replace("vision = true", "vision = false"))
    assert main(["run", flow, "-m", "What is this?", "--image", image, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    error = report["replies"][0]["error"]
    assert "needs vision" in error


def test_an_unreadable_image_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow, _ = _files(tmp_path, FLOW)
    assert main(["run", flow, "-m", "hi", "--image", str(tmp_path / "missing.png")]) == 2
    assert "--image" in capsys.readouterr().err
