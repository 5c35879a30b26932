"""Failpoints: named places where a test can make the process die as if killed.

``RELAYBATON_FAILPOINT=after_model_result`` makes the process exit at once with status
137 (as SIGKILL would) the first time it passes that point; ``name:N`` on the N-th time.
Nothing is flushed or cleaned up on the way out: that is the point. Unset, a failpoint
costs one dict lookup.

The points: ``after_user_accepted``, ``after_model_result`` (the model answered, its record
not yet committed), ``after_tool_started``, ``after_tool_effect`` (the tool ran, its
result not yet recorded), ``mid_handoff`` (the handoff recorded, the baton not yet
delivered), ``after_approval_decision`` (decided, the tool not yet run), ``before_reply``.
"""

from __future__ import annotations

import os

from relaybaton.errors import ConfigError

__all__ = ["ARMED", "FAILPOINTS", "failpoint"]

FAILPOINTS = (
    "after_user_accepted",
    "after_model_result",
    "after_tool_started",
    "after_tool_effect",
    "mid_handoff",
    "after_approval_decision",
    "before_reply",
)

_armed: dict[str, int] = {}
_hits: dict[str, int] = {}
#: Whether any failpoint is armed; hot paths test this before calling ``failpoint``.
ARMED = False


def _arm() -> None:
    spec = os.environ.get("RELAYBATON_FAILPOINT", "")
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name not in FAILPOINTS:
        raise ConfigError(
            f"RELAYBATON_FAILPOINT={spec!r}: unknown failpoint; use one of {', '.join(FAILPOINTS)}"
        )
    _armed[name] = int(count or "1")


_arm()
ARMED = bool(_armed)


def failpoint(name: str) -> None:
    """Die here with status 137 if this failpoint is armed and its count is reached."""
    target = _armed.get(name)
    if target is None:
        return
    hits = _hits.get(name, 0) + 1
    _hits[name] = hits
    if hits >= target:
        os._exit(137)
