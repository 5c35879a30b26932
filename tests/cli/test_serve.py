"""``relaybaton serve`` as a real process: start-up banner, and SIGTERM during load drains."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from relaybaton.cli import main

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
FLOW = """
[flow]
name = "slow_echo"
entry = "echo"

[models.general]
model = "simulated:general"
latency_ms = 400
latency_sigma = 0.0

[[agents]]
name = "echo"
model = "general"
instructions = "Answer briefly."
"""


async def test_sigterm_during_load_drains_every_accepted_message(tmp_path: Path) -> None:
    flow = tmp_path / "flow.toml"
    flow.write_text(FLOW)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RELAYBATON_API_TOKENS", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relaybaton", "serve", str(flow), "--port", "0",
        "--drain-timeout", "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert "serving flow 'slow_echo' on http://127.0.0.1:" in banner
        url = banner.rsplit(" ", 1)[-1].strip()
        example = (await process.stdout.readline()).decode()
        assert "/v1/conversations/demo/messages" in example
        note = (await process.stdout.readline()).decode()
        assert "loopback clients only" in note
        async with aiohttp.ClientSession() as http:
            sends = [
                asyncio.ensure_future(
                    http.post(
                        f"{url}/v1/conversations/c{n}/messages",
                        json={"message_id": f"m{n}", "text": f"hello {n}"},
                    )
                )
                for n in range(40)
            ]
            # Wait until the server has accepted all 40 (its metrics say so), then stop it.
            while True:
                metrics = await (await http.get(f"{url}/metrics")).text()
                if "relaybaton_turns_accepted_total 40.0" in metrics:
                    break
            assert "relaybaton_turns_finished_total 0.0" in metrics
            process.send_signal(signal.SIGTERM)
            answers = await asyncio.gather(*sends)
            assert [a.status for a in answers] == [200] * 40
            bodies = [await a.json() for a in answers]
            assert all(b["replies"] and not b["error"] for b in bodies)
            assert sorted(b["message_id"] for b in bodies) == sorted(f"m{n}" for n in range(40))
        status = await asyncio.wait_for(process.wait(), 30)
        out = (await process.stdout.read()).decode()
        assert status == 0
        assert "draining" in out
        assert "drained, exiting" in out
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_serve_on_a_busy_port_says_so_in_one_line_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = tmp_path / "flow.toml"
    flow.write_text(FLOW)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(flow), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"relaybaton: cannot listen on 127.0.0.1:{port}: ")
    assert "choose another with --port" in err
    assert "Traceback" not in err
    assert err.count("\n") == 1
