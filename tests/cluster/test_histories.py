"""Histories kept from failed runs: the checker must still find in them what it found then.

Each file in ``histories/`` is a :class:`~tests.cluster._checker.Case` a fault test saved
when its check failed (trimmed to the conversations that broke): the seed and scenario that
made it, the history, the journals read back, and what the checker said. Replaying the
checker on it guards the checker; the scenario itself is re-run by its fault test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster._checker import check, load_case

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_the_checker_still_finds_what_it_found(path: Path) -> None:
    case = load_case(path)
    assert case.violations, f"{path.name} keeps a failure: it must list what broke"
    assert [str(v) for v in check(case.history, case.journals)] == case.violations
