"""Console sessions: a login with an API token sets a cookie; forms carry a CSRF token.

The cookie (``rb_session``) is HttpOnly (no script can read it) and SameSite=Strict (no
other site's page can send it), and it names a session kept here, in memory: the token it
logged in with and a CSRF secret that every state-changing form must echo. A session
authorizes the console's pages and forms and the API's reads (an event stream); the API's
writes still need a bearer token. Without tokens configured, only loopback clients get a
session, as only they may use the API.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import final

from aiohttp import web

from relaybaton.service._auth import ApiToken, TokenTable, is_loopback
from relaybaton.service._errors import ApiError

__all__ = ["COOKIE", "Session", "Sessions"]

COOKIE = "rb_session"
_MAX_SESSIONS = 10_000


@final
@dataclass(slots=True)
class Session:
    """One logged-in browser."""

    id: str
    token: ApiToken | None
    csrf: str
    expires: float

    @property
    def who(self) -> str:
        """The name actions are taken in (the token's label)."""
        return self.token.label if self.token is not None else "loopback"


@final
class Sessions:
    """The console's sessions, by cookie value."""

    def __init__(self, tokens: TokenTable, *, max_age_s: float = 8 * 3600) -> None:
        self.tokens = tokens
        self.max_age_s = max_age_s
        self._by_id: dict[str, Session] = {}

    def of(self, request: web.Request) -> Session | None:
        """The request's live session, or None."""
        sid = request.cookies.get(COOKIE)
        session = self._by_id.get(sid) if sid else None
        if session is None:
            return None
        if session.expires < time.time():
            del self._by_id[session.id]
            return None
        return session

    def open_loopback(self, request: web.Request) -> Session | None:
        """A session for a loopback client when no token is configured (else None)."""
        if not self.tokens.open_to_loopback_only or not is_loopback(request.remote):
            return None
        return self._new(None)

    def login(self, secret: str, request: web.Request) -> Session:
        """A session for a valid token; ``ApiError`` 401 otherwise."""
        token = self.tokens.authenticate(f"Bearer {secret.strip()}", request.remote)
        if token is None and not self.tokens.open_to_loopback_only:
            raise ApiError(401, "that token is not valid", code="invalid_token")
        return self._new(token)

    def logout(self, session: Session) -> None:
        """End the session."""
        self._by_id.pop(session.id, None)

    def _new(self, token: ApiToken | None) -> Session:
        if len(self._by_id) >= _MAX_SESSIONS:  # the oldest go first
            for sid in list(self._by_id)[: _MAX_SESSIONS // 10]:
                del self._by_id[sid]
        session = Session(
            id=secrets.token_urlsafe(32),
            token=token,
            csrf=secrets.token_urlsafe(32),
            expires=time.time() + self.max_age_s,
        )
        self._by_id[session.id] = session
        return session

    def set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        """Put the session's cookie on ``response``."""
        response.set_cookie(
            COOKIE,
            session.id,
            max_age=int(self.max_age_s),
            httponly=True,
            samesite="Strict",
            path="/",
        )

    @staticmethod
    def check_csrf(session: Session, sent: str | None) -> None:
        """Refuse a state-changing form whose CSRF token is not the session's (403)."""
        if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise ApiError(
                403,
                "the form's CSRF token is missing or stale; reload the page and try again",
                code="csrf",
            )
