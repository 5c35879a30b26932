"""The ``relaybaton`` command: one module per command group, ``main`` the entry point."""

from relaybaton.cli._main import main

__all__ = ["main"]
