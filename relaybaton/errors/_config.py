"""Errors of configuration: a flow file, a missing key, a store another process holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from relaybaton.errors._base import RelaybatonError

# --- configuration ------------------------------------------------------------------------


class ConfigError(RelaybatonError, ValueError):
    """Configuration is wrong; nothing was started.

    The one class for configuration misuse: a flow file, an argument a constructor refuses
    (a mailbox capacity, an agent name, an approval rule, a routing condition, ...), a model
    id or an environment variable. It is also a ``ValueError``, which these refusals were
    before they had a class of their own.
    """


class FlowProblem:
    """One problem in a flow file: where it is and what to do."""

    __slots__ = ("message", "path")

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def __repr__(self) -> str:
        return f"FlowProblem({self.path!r}, {self.message!r})"


class FlowError(ConfigError):
    """A flow file has one or more problems; ``problems`` lists them all."""

    def __init__(self, source: str, problems: Sequence[FlowProblem]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the flow\n{lines}")
        self.source = source
        self.problems = tuple(problems)


class MissingCredentialsError(ConfigError):
    """A model needs a key from an environment variable that is not set."""

    def __init__(self, variable: str, model: str) -> None:
        super().__init__(
            f"model {model!r} needs an API key: set the environment variable {variable}"
        )
        self.variable = variable
        self.model = model


class StoreInUseError(ConfigError):
    """Another process holds the journal store: outside cluster mode one process serves it.

    ``holder`` describes that process (``pid``, ``host``, ``command``, ``since``, and the
    ``address`` of its HTTP service when it serves one); ``store`` names the store without
    secrets.
    """

    def __init__(self, message: str, *, store: str, holder: Mapping[str, object]) -> None:
        super().__init__(message)
        self.store = store
        self.holder = dict(holder)
