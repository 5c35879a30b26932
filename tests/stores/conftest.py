"""The conformance suite's store fixtures, for every test module of the stores."""

from tests.stores.test_conformance import backend, store

__all__ = ["backend", "store"]
