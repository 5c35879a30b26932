"""The public names, and the layering rule of DESIGN.md, checked on the source."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "relaybaton"
PUBLIC = ["relaybaton.runtime", "relaybaton.actors", "relaybaton.adapters", "relaybaton.errors"]
# What relaybaton.actors may take from relaybaton.adapters: the protocol and the chat types.
ADAPTER_SEAMS = {  # the adapter protocols and types; never a concrete adapter
    "relaybaton.adapters",
    "relaybaton.adapters._chat",
    "relaybaton.adapters._graph_store",
    "relaybaton.adapters._graph_types",
    "relaybaton.adapters._metrics",
    "relaybaton.adapters._protocol",
}


@pytest.mark.parametrize("module_name", PUBLIC)
def test_all_is_sorted_and_every_name_in_it_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = list(module.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))
    missing = [name for name in names if not hasattr(module, name)]
    assert missing == []


def imports_of(path: Path, root: Path = PACKAGE.parent) -> list[tuple[int, str]]:
    """Every module a source file imports, absolute, with its line (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # "from relaybaton import adapters" imports a package too.
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return found


def sources(subpackage: str) -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py"))


def test_the_import_scanner_sees_absolute_relative_and_from_imports(tmp_path: Path) -> None:
    module = tmp_path / "relaybaton" / "runtime" / "_probe.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "import relaybaton.actors\nfrom ..adapters import _simulated\nfrom . import _cell\n",
        encoding="utf-8",
    )
    found = {name for _, name in imports_of(module, root=tmp_path)}
    assert {
        "relaybaton.actors",
        "relaybaton.adapters._simulated",
        "relaybaton.runtime._cell",
    } <= found


def test_the_runtime_imports_nothing_from_actors_or_adapters() -> None:
    assert sources("runtime")
    offences = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in sources("runtime")
        for line, name in imports_of(path)
        if name.startswith(("relaybaton.actors", "relaybaton.adapters"))
    ]
    assert offences == []


def test_the_actors_import_only_the_adapter_protocol_and_types() -> None:
    assert sources("actors")
    offences = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in sources("actors")
        for line, name in imports_of(path)
        if name.startswith("relaybaton.adapters")
        and name not in ADAPTER_SEAMS
        and name.rpartition(".")[0] not in ADAPTER_SEAMS - {"relaybaton.adapters"}
        and not _is_package_level_name(name)
    ]
    assert offences == []


def _is_package_level_name(name: str) -> bool:
    # "from relaybaton.adapters import ToolSpec" shows up as relaybaton.adapters.ToolSpec:
    # a name the package re-exports, not a concrete adapter module.
    parent, _, leaf = name.rpartition(".")
    if parent != "relaybaton.adapters" or leaf.startswith("_"):
        return False
    return leaf in importlib.import_module("relaybaton.adapters").__all__
