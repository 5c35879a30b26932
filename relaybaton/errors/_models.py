"""Errors of model calls: what failed, and whether a retry may help (``retryable``)."""

from __future__ import annotations

from relaybaton.errors._base import RelaybatonError

# --- models -------------------------------------------------------------------------------


class ModelError(RelaybatonError):
    """A model call failed.

    Attributes:
        retryable: whether the same request may succeed if sent again.
        provider: the provider that failed (``openai``, ``simulated``, ...).
        status: the HTTP status when there was one.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        if retryable is not None:
            self.retryable = retryable


class RateLimitedError(ModelError):
    """The provider rate-limited the call (429)."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status=status)
        self.retry_after = retry_after


class ModelOverloadedError(ModelError):
    """The provider is overloaded (Anthropic 529, OpenAI 503)."""

    retryable = True


class ModelTimeoutError(ModelError, TimeoutError):
    """The call timed out; ``phase`` is ``connect``, ``first_byte`` or ``total``."""

    retryable = True

    def __init__(self, message: str, *, provider: str = "", phase: str = "total") -> None:
        super().__init__(message, provider=provider)
        self.phase = phase


class ModelConnectionError(ModelError, ConnectionError):
    """The connection to the provider failed or broke."""

    retryable = True


class AuthenticationError(ModelError):
    """The provider refused the credentials (401/403)."""


class BadRequestError(ModelError):
    """The provider refused the request as malformed (400)."""


class ContextLengthExceededError(BadRequestError):
    """The request is longer than the model's context window."""


class ContentFilteredError(ModelError):
    """The provider refused to produce or accept the content."""


class MalformedResponseError(ModelError):
    """The provider's answer could not be decoded."""

    retryable = True


class StreamInterruptedError(ModelError):
    """A stream ended before its end marker.

    Retryable only when nothing was emitted yet: text already shown to a user must never
    be silently produced a second time.
    """

    def __init__(self, message: str, *, provider: str = "", emitted: bool = False) -> None:
        super().__init__(message, provider=provider, retryable=not emitted)
        self.emitted = emitted


class NoCapableModelError(ModelError):
    """No candidate of a slot can take the call; ``needs`` lists what was missing."""

    def __init__(self, message: str, *, needs: tuple[str, ...] = ()) -> None:
        super().__init__(message, provider="router", retryable=False)
        self.needs = needs
