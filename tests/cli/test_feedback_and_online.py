"""`serve` with an [evals] table grades live traffic; `relaybaton feedback` rates a conversation."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import aiohttp
import pytest

from relaybaton.cli import main
from relaybaton.cli._serve import serve
from relaybaton.flow import load_flow
from relaybaton.service import TokenTable

pytestmark = pytest.mark.anyio

FLOW = """
[flow]
name = "tiny"

[models.m]
model = "simulated:general"
latency_ms = 0

[[agents]]
name = "helper"
model = "m"
instructions = "Knowledge: our shop opens at nine."

[evals]
sample = 1.0

[evals.thresholds]
p95_ms = 60000
error_rate = 0.01
satisfaction = 4.5

[[evals.graders]]
name = "answers"
kind = "regex"
value = "\\\\S"

[[evals.graders]]
name = "needs_an_expectation"
kind = "contains"
expected = "answer"
"""


async def test_serve_grades_live_replies_and_takes_feedback_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "flow.toml"
    path.write_text(FLOW)
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server = asyncio.ensure_future(
        serve(load_flow(path), port=0, tokens=TokenTable(), stop=stop,
              on_ready=ready.set_result, out=io.StringIO())
    )  # fmt: skip
    try:
        url = await asyncio.wait_for(ready, 10)
        async with aiohttp.ClientSession() as session:
            for index in range(3):
                async with session.post(
                    f"{url}/v1/conversations/c{index}/messages", json={"text": "when do you open?"}
                ) as response:
                    assert response.status == 200
            status = await asyncio.to_thread(
                main, ["feedback", "c0", "--rating", "4", "--comment", "ok", "--url", url]
            )
            assert status == 0
            assert "rated c0: 4/5 → grade 0.75 of helper" in capsys.readouterr().out
            quality: dict[str, object] = {}
            for _ in range(100):  # grading runs beside the replies: read until it caught up
                async with session.get(f"{url}/v1/quality") as response:
                    quality = await response.json()
                grading = quality["online_grading"]
                assert isinstance(grading, dict)
                if grading["graded"] == 3:
                    break
                await asyncio.sleep(0.02)
            grading = quality["online_grading"]
            assert isinstance(grading, dict)
            assert grading["graded"] == 3
            assert list(grading["by_grader"]) == ["answers"]  # the other needs expectations
            states = {t["threshold"]: t["state"] for t in quality["thresholds"]}  # type: ignore[attr-defined]
            assert states == {"p95_ms": "met", "error_rate": "met", "satisfaction": "breached"}
            async with session.get(f"{url}/metrics") as response:
                metrics = await response.text()
            assert "relaybaton_online_grades_total 3.0" in metrics
            assert "relaybaton_satisfaction 4.0" in metrics
        assert main(["feedback", "c0", "--rating", "9", "--url", url]) == 2
        assert "--rating must be 1 to 5" in capsys.readouterr().err
        status = await asyncio.to_thread(
            main, ["feedback", "nobody", "--rating", "3", "--url", url]
        )
        assert status == 2
        assert "refused the feedback (404)" in capsys.readouterr().err
    finally:
        stop.set()
        assert await asyncio.wait_for(server, 20) == 0
