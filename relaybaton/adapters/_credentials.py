"""Where API keys come from, and the wrapper that keeps them out of reprs.

Rules (checked when an adapter is built, so a missing key fails at start-up and not as a
401 on the first call):

- ``openai``: ``OPENAI_API_KEY``; ``anthropic``: ``ANTHROPIC_API_KEY``;
- ``gemini``: ``GOOGLE_API_KEY`` when set, else ``GEMINI_API_KEY`` (the official SDK's
  precedence);
- ``openai-compatible``: no key unless the flow names one (local servers need none);
- a flow's ``api_key_env`` replaces the provider's variable names.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import NoReturn, final

from relaybaton.adapters._redact import REDACTED, register_secret
from relaybaton.errors import MissingCredentialsError

__all__ = ["KEY_VARIABLES", "Secret", "resolve_api_key"]

KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
    "openai-compatible": (),
}


@final
class Secret:
    """A key that prints as ``[redacted]``; ``reveal()`` is the one way to read it.

    Not a ``str`` subclass on purpose: ``f"{s}"`` on a str subclass formats the raw value.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """Return the key itself, for the one header that needs it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled; read the key from the environment again")


def resolve_api_key(
    provider: str,
    model_id: str,
    *,
    api_key_env: str | None,
    environ: Mapping[str, str],
) -> Secret | None:
    """Find the key for ``provider``; ``None`` only where no key is needed.

    Raises:
        MissingCredentialsError: naming the variable to set.
    """
    names = (api_key_env,) if api_key_env else KEY_VARIABLES.get(provider, ())
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return Secret(value)
    if not names:
        return None
    raise MissingCredentialsError(" or ".join(names), model_id)
