"""After a run: read every conversation's journal back, check the history, keep a failure.

A failing check writes the case (seed, scenario, history, journals, what broke) as JSON to
``RELAYBATON_HISTORIES_DIR`` (default: the test's temporary folder); copying that file into
``tests/cluster/histories/`` keeps it as a regression test (``test_histories.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from relaybaton.stores._postgres import PostgresStore
from tests.cluster._checker import Case, Entry, Violation, check, save_case
from tests.cluster._history import History
from tests.cluster._journal_view import Provenance, read_journals

__all__ = ["Verdict", "judge"]


class Verdict:
    def __init__(self, violations: list[Violation], journals: dict[str, list[Entry]]) -> None:
        self.violations = violations
        self.journals = journals
        self.saved: Path | None = None

    @property
    def lost(self) -> int:
        return sum(v.property == "lost" for v in self.violations)

    @property
    def duplicated(self) -> int:
        return sum(v.property == "duplicated" for v in self.violations)

    def explain(self, limit: int = 20) -> str:
        lines = [str(v) for v in self.violations[:limit]]
        more = len(self.violations) - limit
        if more > 0:
            lines.append(f"... and {more} more")
        if self.saved is not None:
            lines.append(
                f"case saved to {self.saved}; copy it into tests/cluster/histories/ to keep it"
            )
        return "\n".join(lines)


async def judge(dsn: str, history: History, *, seed: int, scenario: str, folder: Path) -> Verdict:
    """Check ``history`` against the journals in the store at ``dsn``."""
    store = PostgresStore(dsn)
    reader = await psycopg.AsyncConnection.connect(dsn, autocommit=True)

    async def provenance(conversation_id: str) -> Provenance:
        cur = await reader.execute(
            "SELECT seq, writer, generation FROM relaybaton.records"
            " WHERE conversation_id = %s ORDER BY seq",
            (conversation_id,),
        )
        return [(int(s), str(w), g) for s, w, g in await cur.fetchall()]

    try:
        cids = (op.conversation_id for op in history.ops)
        journals = await read_journals(store, cids, provenance)
    finally:
        await store.aclose()
        await reader.close()
    violations = check(history, journals)
    verdict = Verdict(violations, journals)
    if violations:
        where = Path(os.environ.get("RELAYBATON_HISTORIES_DIR", folder))
        case = Case(
            seed=seed,
            scenario=scenario,
            history=history,
            journals=journals,
            violations=[str(v) for v in violations],
        )
        verdict.saved = save_case(where / f"{scenario}-seed{seed}.json", case)
    return verdict
