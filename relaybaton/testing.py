"""Fakes for testing code built on relaybaton: a virtual clock, a scripted model and a
model with switchable faults.

``FakeClock`` moves only when told (``await clock.advance(seconds)``), so timeouts, retries
and windows are deterministic; ``ScriptedModel`` answers from a list or a function of the
request, and ``tool_call`` writes the tool calls of a script; ``FaultyModel`` wraps any
adapter and slows it, fails it or hangs it on demand (failover drills).

The package's own code never imports this module (an import contract checks it): it
imports the fakes' private modules instead, so these names have one public home.
"""

from relaybaton.adapters._faulty import FaultyModel
from relaybaton.adapters._scripted import ScriptedModel, ScriptItem, tool_call
from relaybaton.runtime._clock import FakeClock

__all__ = ["FakeClock", "FaultyModel", "ScriptItem", "ScriptedModel", "tool_call"]
