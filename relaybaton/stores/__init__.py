"""Journal stores: SQLite (the embedded default) and PostgreSQL (many nodes).

Both implement the kernel's :class:`~relaybaton.runtime.Store` port and pass one
conformance suite; ``open_store`` picks one from a path or a ``postgresql://`` URL.
"""

from relaybaton.stores._factory import open_store
from relaybaton.stores._postgres import PostgresStore
from relaybaton.stores._sqlite import SqliteStore

__all__ = ["PostgresStore", "SqliteStore", "open_store"]
