"""The command's parser and dispatch: every command group registered, bad input an exit
status of 2 and one message, never a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from relaybaton.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_the_help_lists_every_command_group_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    commands = ["run", "validate", "resume", "approvals", "conversations", "memory", "mcp"]
    commands += ["serve", "demo", "eval", "feedback"]
    listed = [line.split()[0] for line in out.splitlines() if re.match(r" {4}\S", line)]
    assert listed == commands


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_missing_flow_file_exits_2_without_a_traceback(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.toml"
    args = [command, str(missing)] + (["-m", "hi"] if command == "run" else [])
    assert main(args) == 2
    _, err = capsys.readouterr()
    assert err == f"relaybaton: {missing}: 1 problem(s) in the flow\n  no such file\n"
    assert "Traceback" not in err


def test_the_subprocess_exits_2_on_a_bad_flow_without_a_traceback(tmp_path: Path) -> None:
    flow = tmp_path / "bad.toml"
    flow.write_text("[[agents]\n")
    completed = subprocess.run(
        [sys.executable, "-m", "relaybaton", "validate", str(flow)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.startswith(f"relaybaton: {flow}: 1 problem(s) in the flow\n")
    assert "not valid TOML" in completed.stderr
    assert "Traceback" not in completed.stderr
