"""The memory commands: import, export, and their errors (exit 2, one line, no traceback)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from relaybaton.cli import main
from relaybaton.cli._memory import add_memory_commands
from tests._postgres import PG_DSN, drop_schema, require_postgres, throwaway_schema

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (
    '{"type":"entity","name":"Zoë","entityType":"person","observations":["a"]}\n'
    '{"type":"relation","from":"Zoë","to":"Zoë","relationType":"self"}'
)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaybaton", *args],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )


def test_import_then_export_to_file_and_stdout_is_byte_identical(tmp_path: Path) -> None:
    source, store, out = tmp_path / "in.jsonl", tmp_path / "g.db", tmp_path / "out.jsonl"
    source.write_text(SAMPLE, encoding="utf-8")
    assert main(["memory", "import", str(source), "--store", str(store)]) == 0
    assert main(["memory", "export", "--store", str(store), "-o", str(out)]) == 0
    assert out.read_bytes() == source.read_bytes()
    shown = run_cli("memory", "export", "--store", str(store))
    assert (shown.returncode, shown.stdout.encode()) == (0, source.read_bytes())


def test_malformed_file_exits_2_with_the_line_and_no_traceback(tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(SAMPLE + "\n{broken", encoding="utf-8")
    done = run_cli("memory", "import", str(source), "--store", str(tmp_path / "g.db"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"relaybaton: error: {source}:3: not JSON: Expecting property")
    assert "Traceback" not in done.stderr


def test_import_into_a_full_namespace_exits_2_and_names_the_fix(tmp_path: Path) -> None:
    source, store = tmp_path / "in.jsonl", tmp_path / "g.db"
    source.write_text(SAMPLE, encoding="utf-8")
    assert main(["memory", "import", str(source), "--store", str(store)]) == 0
    done = run_cli("memory", "import", str(source), "--store", str(store))
    assert done.returncode == 2
    assert "already holds 1 entities and 1 relations" in done.stderr
    assert "--replace" in done.stderr


def test_export_of_a_missing_store_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("memory", "export", "--store", str(tmp_path / "none.db"))
    assert done.returncode == 2
    assert "no store at" in done.stderr


def test_commands_register_on_a_parent_parser() -> None:
    parser = argparse.ArgumentParser(prog="relaybaton")
    add_memory_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["memory", "export", "--store", __file__, "-o", "g.jsonl"])
    assert (args.store, args.output, args.namespace) == (__file__, "g.jsonl", "default")
    with pytest.raises(SystemExit):
        parser.parse_args(["mcp", "memory", "--store", "x.db"])


@pytest.mark.integration
def test_import_then_export_through_a_postgres_url_is_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_postgres()
    from relaybaton.memory import _factory as _graph_factory

    schema = throwaway_schema()
    # The commands use the default schema; this test's goes in its place and is dropped.
    monkeypatch.setattr(_graph_factory, "GRAPH_SCHEMA", schema)
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(SAMPLE, encoding="utf-8")
    try:
        assert main(["memory", "import", str(source), "--store", PG_DSN]) == 0
        assert main(["memory", "export", "--store", PG_DSN, "-o", str(out)]) == 0
        assert out.read_text(encoding="utf-8") == SAMPLE
    finally:
        drop_schema(schema)
