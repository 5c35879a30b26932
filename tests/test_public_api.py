"""The public names, and the one import direction of docs/architecture.md.

The direction itself is an import-linter contract in ``pyproject.toml`` (``.ci/run`` runs
``lint-imports``); these tests check that the contract names every part of the package, that
it holds, and that it would catch an upward import.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "relaybaton"
PUBLIC = [
    "relaybaton",
    "relaybaton.runtime",
    "relaybaton.runtime.messages",
    "relaybaton.adapters",
    "relaybaton.actors",
    "relaybaton.actors.routing",
    "relaybaton.memory",
    "relaybaton.stores",
    "relaybaton.mcp",
    "relaybaton.evals",
    "relaybaton.cluster",
    "relaybaton.service",
    "relaybaton.flow",
    "relaybaton.cli",
    "relaybaton.errors",
    "relaybaton.testing",
]


FAKES = ["FakeClock", "FaultyModel", "ScriptItem", "ScriptedModel", "tool_call"]


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(lint.parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("module_name", PUBLIC)
def test_all_is_sorted_and_every_name_in_it_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = list(module.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))
    missing = [name for name in names if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("module_name", [name for name in PUBLIC if name != "relaybaton.testing"])
def test_test_fakes_have_one_public_home(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert [name for name in FAKES if name in module.__all__ or hasattr(module, name)] == []


def test_the_test_fakes_are_in_relaybaton_testing() -> None:
    testing = importlib.import_module("relaybaton.testing")
    assert testing.__all__ == FAKES


def test_every_part_of_the_package_is_a_layer_of_the_contract() -> None:
    (layers,) = [c["layers"] for c in _contracts() if c["type"] == "layers"]
    assert isinstance(layers, list)
    # "a | b" is one layer of independent siblings: neither imports the other.
    named = {name.strip() for layer in layers for name in str(layer).split("|")}
    parts = {
        f"relaybaton.{path.name}"
        for path in PACKAGE.iterdir()
        if (path / "__init__.py").is_file() and not path.name.startswith("_")
    }
    assert parts | {"relaybaton.errors"} == named


def test_the_import_contracts_are_kept() -> None:
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_an_upward_import_from_the_kernel_breaks_the_layers_contract(tmp_path: Path) -> None:
    copy = tmp_path / "relaybaton"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    probe = copy / "runtime" / "_probe.py"
    probe.write_text("def late() -> None:\n    from relaybaton.actors import Agent\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert "relaybaton.runtime._probe -> relaybaton.actors" in done.stdout


def test_no_module_of_the_package_is_over_600_lines() -> None:
    # One concept per module: a module is split before it reaches 600 lines.
    long = {
        str(path.relative_to(REPO)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert long == {}
