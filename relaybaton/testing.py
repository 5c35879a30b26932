"""Fakes for testing code built on relaybaton: a virtual clock and a scripted model.

``FakeClock`` moves only when told (``await clock.advance(seconds)``), so timeouts, retries
and windows are deterministic; ``ScriptedModel`` answers from a list or a function of the
request, and ``tool_call`` writes the tool calls of a script.
"""

from relaybaton.adapters._scripted import ScriptedModel, ScriptItem, tool_call
from relaybaton.runtime._clock import FakeClock

__all__ = ["FakeClock", "ScriptItem", "ScriptedModel", "tool_call"]
