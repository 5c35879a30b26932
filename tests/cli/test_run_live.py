"""``relaybaton run`` on a terminal streams the replies as they come."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import msgspec

from relaybaton.actors import ReplyDeltaEvent
from relaybaton.cli._live import live_replies
from relaybaton.runtime.messages import ReplyEvent

ROOT = Path(__file__).resolve().parents[2]


def test_deltas_are_written_as_they_arrive_one_line_per_reply() -> None:
    out = io.StringIO()
    listen = live_replies("c1", out)
    events: list[msgspec.Struct] = [
        ReplyDeltaEvent(agent="triage", text="Hello", epoch=0),
        ReplyDeltaEvent(agent="triage", text=" there", epoch=0),
    ]
    for event in events:
        listen("c1", event)
    assert out.getvalue() == "  triage: Hello there"  # written before the reply ends
    listen("other", ReplyDeltaEvent(agent="x", text="not ours", epoch=0))
    listen("c1", ReplyEvent(agent="triage", text="Hello there", epoch=0, at=0.0))
    listen("c1", ReplyEvent(agent="billing", text="", epoch=1, at=0.0, error="model failed"))
    assert out.getvalue() == "  triage: Hello there\n  ! billing failed: model failed\n"


def test_run_streams_on_a_terminal_and_prints_the_trace_after() -> None:
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "relaybaton", "run",
        str(ROOT / "examples" / "customer_service.toml"), "-m", "Hello",
    ]  # fmt: skip
    try:
        process = subprocess.run(
            command, stdout=follower, stderr=subprocess.PIPE, env=env, timeout=60, check=False
        )
        os.close(follower)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the follower end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    output = b"".join(chunks).decode()
    assert process.returncode == 0, process.stderr
    live, _, trace = output.partition("trace:")
    assert "  user: Hello" in live
    assert "  triage: " in live
    assert "model  triage" in trace
