"""One mikro server's GraphQL session: operations over the transport, errors in the user's terms.

GraphQL answers HTTP 200 with an ``errors`` list for most failures, so the server's words decide
which typed error the user sees (refused token, missing object, a query the server does not know).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from napari_lablink.client.arkitekt.workers import WorkerTokens
from napari_lablink.client.errors import (
    AuthenticationError,
    LablinkError,
    NotFoundError,
    ProtocolError,
    ServerError,
    cut,
    plain_text,
)
from napari_lablink.client.transport import HeaderAuth, Transport

__all__ = ["MikroSession"]

#: Words of the real servers' refusals: generation 2 says "No Authorization header" without a token
#: and "Error decoding token" for a bad one; generation 1 refuses anonymous mutations "permission".
_AUTH_WORDS = ("token", "authenticat", "authoriz", "permission", "credential", "not allowed")
_MISSING_WORDS = ("does not exist", "not found", "no representation", "no image", "matching query")
_UNKNOWN_WORDS = ("cannot query field", "unknown argument", "unknown field")


class MikroSession:
    """GraphQL operations on one server; what every generation's reads and writes go through.

    A session pickles (inside the grant sources of lazy arrays sent to ``dask.distributed``
    workers) as what another process needs to open the same session: the server and ``login``'s
    answer, the token or an Arkitekt grant's :class:`WorkerTokens`. Each process then keeps one
    session per server and login, so its chunk reads share a pool.
    """

    def __init__(
        self, transport: Transport, login: Callable[[], str | WorkerTokens | None]
    ) -> None:
        self.transport = transport
        self._login = login

    @classmethod
    def connect(cls, base_url: str, label: str, token: Callable[[], str | None]) -> MikroSession:
        """A session with the server at ``base_url``; ``token`` is read at every request."""
        transport = Transport(
            base_url,
            label=label,
            auth=HeaderAuth(httpx.URL(base_url), "Bearer", token),
            secrets=lambda: tuple(t for t in (token(),) if t),
        )
        return cls(transport, token)

    def __reduce__(self) -> tuple[Any, ...]:
        login = self._login()
        if isinstance(login, WorkerTokens):
            return (_session_for, (_Login(self.transport.base_url, self.label, None, login),))
        return (_session_for, (_Login(self.transport.base_url, self.label, login),))

    def close(self) -> None:
        self.transport.close()

    @property
    def label(self) -> str:
        """How errors name the server."""
        return self.transport.label

    def scrub(self, text: str) -> str:
        """``text`` without any secret of this session."""
        return self.transport.scrub(text)

    def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        obj: str | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Run one operation and return its ``data``; GraphQL errors become typed errors.

        Set ``idempotent=False`` for mutations that create something: they are then not retried
        after a connection drop, so a retry cannot register an object twice.
        """
        response = self.transport.request(
            "POST",
            "graphql",
            json={"query": query, "variables": variables or {}},
            idempotent=idempotent,
            obj=obj,
        )
        try:
            body = response.json()
        except ValueError:
            raise self.transport.protocol_error(
                f"The GraphQL endpoint answered HTTP {response.status_code} with something that "
                "is not JSON",
                obj,
            ) from None
        if not isinstance(body, dict):
            raise self.transport.protocol_error("The GraphQL answer is not a JSON object", obj)
        errors = body.get("errors")
        if errors:
            raise self._error(errors, obj)
        data = body.get("data")
        if not isinstance(data, dict):
            raise self.transport.protocol_error("The GraphQL answer has no data", obj)
        return data

    def _error(self, errors: object, obj: str | None) -> LablinkError:
        messages = [
            plain_text(e.get("message", e)) if isinstance(e, dict) else plain_text(e)
            for e in (errors if isinstance(errors, list) else [errors])
        ]
        said = cut(self.scrub("; ".join(messages)), 300)
        lowered = said.lower()
        if "no authorization header" in lowered:
            return AuthenticationError(
                f"The server needs a token and got none ({said})", server=self.label, obj=obj
            )
        if any(w in lowered for w in _AUTH_WORDS):
            return AuthenticationError(
                f"The server refused the token ({said})", server=self.label, obj=obj
            )
        if any(w in lowered for w in _MISSING_WORDS):
            return NotFoundError(f"Not found ({said})", server=self.label, obj=obj)
        if any(w in lowered for w in _UNKNOWN_WORDS):
            return ProtocolError(
                f"The server does not understand the query ({said})", server=self.label, obj=obj
            )
        return ServerError(
            f"The server answered with an error ({said})", server=self.label, obj=obj
        )


@dataclass(frozen=True)
class _Login:
    """What opens a session in another process. ``repr`` hides the token."""

    base_url: str
    label: str
    token: str | None = field(repr=False)
    tokens: WorkerTokens | None = None


_sessions: dict[_Login, MikroSession] = {}
_sessions_lock = threading.Lock()


def _session_for(login: _Login) -> MikroSession:
    """This process's session for ``login``, opened on first use (a worker's, usually)."""
    with _sessions_lock:
        session = _sessions.get(login)
        if session is None or session.transport.closed:
            session = _open(login)
            _sessions[login] = session
        return session


def _open(login: _Login) -> MikroSession:
    tokens = login.tokens
    if tokens is None:
        token = login.token
        return MikroSession.connect(login.base_url, login.label, lambda: token)
    provider = tokens.provider()
    transport = Transport(
        login.base_url,
        label=login.label,
        auth=tokens.auth_for(login.base_url),
        secrets=provider.secrets,
    )
    return MikroSession(transport, lambda: tokens)
