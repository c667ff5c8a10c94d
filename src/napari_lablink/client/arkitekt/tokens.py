"""Access tokens from the granted token endpoint (OAuth2 client credentials), kept fresh.

Tokens live in memory only. One is fetched on first use, renewed shortly before it expires and
once after a server refused it; concurrent callers share one fetch. The client credentials go to
the granted token URL only, and only when it is on the deployment's own host; redirects are not
followed, so they cannot be carried elsewhere.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

import httpx

from napari_lablink.client.arkitekt._http import new_client, origin_of
from napari_lablink.client.arkitekt.errors import (
    DeploymentUnreachableError,
    LoginRequiredError,
    TokenError,
)
from napari_lablink.client.arkitekt.granted import GrantedConfiguration, check_same_host
from napari_lablink.client.errors import ProtocolError, ServerError, scrub

__all__ = ["BearerAuth", "TokenProvider", "jwt_expiry"]

log = logging.getLogger(__name__)

#: Ask for a new token this long before the old one expires (fakts-next does the same).
RENEW_MARGIN = 30.0


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it (only to plan renewal)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


class TokenProvider:
    """Hands out a valid access token for a granted configuration.

    ``renew_grant`` is called once when the token endpoint answers ``invalid_client`` (the
    registration changed): it returns a fresh configuration (by claiming again, or registering
    anew) or raises. ``clock`` measures token lifetimes (monotonic; injectable for tests).
    """

    def __init__(
        self,
        configuration: GrantedConfiguration,
        *,
        renew_grant: Callable[[], GrantedConfiguration] | None = None,
        clock: Callable[[], float] = time.monotonic,
        margin: float = RENEW_MARGIN,
        timeout: float = 10.0,
    ) -> None:
        self._configuration = configuration
        self._renew_grant = renew_grant
        self._clock = clock
        self._margin = margin
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._http = new_client(timeout)
        self._closed = False
        self.fetches = 0

    def __repr__(self) -> str:
        return f"TokenProvider({origin_of(self._configuration.token_url)})"

    @property
    def configuration(self) -> GrantedConfiguration:
        return self._configuration

    def secrets(self) -> tuple[str, ...]:
        """Everything to scrub from messages built from server replies."""
        return tuple(s for s in (self._token, self._configuration.client_secret) if s)

    def token(self) -> str:
        """A token valid for at least a little while longer."""
        with self._lock:
            if self._closed:
                raise LoginRequiredError(
                    "This login was closed (logged out)",
                    server=origin_of(self._configuration.deployment),
                )
            if self._token is None or self._clock() >= self._renew_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str | None = None) -> None:
        """A server refused ``token`` (or the current one): fetch a new one next time. A token
        that was already replaced is ignored, so concurrent failures cause one fetch."""
        with self._lock:
            if token is None or token == self._token:
                self._token = None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._token = None
            self._closed = True
        self._http.close()

    def _fetch(self) -> None:
        try:
            self._request()
        except TokenError:
            if self._renew_grant is None:
                raise
            log.info("the token endpoint refused the client; renewing the grant")
            self._configuration = self._renew_grant()
            self._request()

    def _request(self) -> None:
        config = self._configuration
        check_same_host(config.token_url, config.deployment, "token endpoint")
        label = origin_of(config.token_url)
        form = {"grant_type": "client_credentials"}
        if config.scopes:
            form["scope"] = " ".join(config.scopes)
        started = self._clock()
        try:
            response = self._http.post(
                config.token_url, data=form, auth=(config.client_id, config.client_secret)
            )
        except httpx.HTTPError as error:
            raise DeploymentUnreachableError(
                f"The token endpoint could not be reached ({type(error).__name__})",
                server=label,
                obj="access token",
            ) from None
        self.fetches += 1
        answer = self._answer(response, label)
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("The token endpoint sent no access token", server=label)
        lifetime = answer.get("expires_in")
        if not isinstance(lifetime, int | float):
            exp = jwt_expiry(token)
            lifetime = exp - time.time() if exp is not None else 300.0
        self._token = token
        self._renew_at = started + max(lifetime - self._margin, lifetime / 2)

    def _answer(self, response: httpx.Response, label: str) -> dict[str, Any]:
        if response.is_redirect:
            raise ProtocolError(
                f"The token endpoint redirected (HTTP {response.status_code}); the client "
                "credentials were not sent on",
                server=label,
                obj="access token",
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code == 200 and isinstance(answer, dict):
            return answer
        error = answer.get("error") if isinstance(answer, dict) else None
        if error == "invalid_client" or response.status_code == 401:
            raise TokenError(
                f"The token endpoint refused the app's client credentials ({error or 'HTTP 401'})",
                server=label,
                obj="access token",
            )
        said = scrub(str(error or response.text[:200]), self.secrets())
        raise ServerError(
            f"The token endpoint answered HTTP {response.status_code}: {said}",
            server=label,
            obj="access token",
        )


#: How the mikro servers refuse a JWT they cannot accept, inside an HTTP 200 GraphQL answer
#: (generation 2) or as an HTTP 401/403 (generation 1, proxies).
_REFUSED_TOKEN_WORDS = ("Error decoding token", "Signature has expired", "No Authorization header")


def _refused_token(response: httpx.Response) -> bool:
    if response.status_code in (401, 403):
        return True
    if response.status_code != 200 or "json" not in response.headers.get("content-type", ""):
        return False
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return False
    return any(
        isinstance(e, dict) and str(e.get("message", "")).startswith(_REFUSED_TOKEN_WORDS)
        for e in errors
    )


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <access token>`` for one origin only, retried once with a new
    token when that origin refuses it (HTTP 401/403, or a GraphQL error saying so)."""

    requires_request_body = True
    requires_response_body = True

    def __init__(self, tokens: TokenProvider, origin: str) -> None:
        url = httpx.URL(origin)
        self._origin = (url.scheme, url.host, url.port)
        self._tokens = tokens

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = request.url
        if (url.scheme, url.host, url.port) != self._origin:
            yield request
            return
        token = self._tokens.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if _refused_token(response):
            self._tokens.invalidate(token)
            request.headers["Authorization"] = f"Bearer {self._tokens.token()}"
            yield request
