"""What the console shows besides the runtime (``create_service(console=...)``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import final

from relaybaton.memory._store import GraphStore

__all__ = ["ConsoleOptions"]


@final
@dataclass(frozen=True, kw_only=True)
class ConsoleOptions:
    """Where the evaluation reports are (JSON files), and the memory graph to browse."""

    reports: Path | None = None
    memory: GraphStore | None = None
