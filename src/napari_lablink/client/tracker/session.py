"""A MIBItracker session: the JWT it holds, how it is kept fresh, and every call made with it.

It behaves on the wire like Ionpath's reference client: it logs in by email and password (or
validates a given token with ``OPTIONS /``), sends ``JWT <token>``, refreshes the token once
300 s have passed since the last refresh, retries 502/503 for every method but the login, and
gives tracker calls 10 s and storage transfers 30 s. Unlike the reference client, every transfer
has a timeout, and the token only ever goes to the tracker's own origin: signed URLs are fetched
through the same pooled session, whose auth skips other origins.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx

from napari_lablink.client.config import Credentials
from napari_lablink.client.deadline import configured_seconds
from napari_lablink.client.errors import AuthenticationError, ConfigurationError
from napari_lablink.client.transport import HeaderAuth, RetryPolicy, Transport, describe_response
from napari_lablink.client.uri import RemoteURI

__all__ = ["CALL_TIMEOUT", "REFRESH_SECONDS", "TRANSFER_TIMEOUT", "TrackerSession"]

#: The reference client's retry rule: 3 retries, backoff factor 0.3 s (urllib3's Retry).
TRACKER_RETRY = RetryPolicy(attempts=4, backoff=0.3)
CALL_TIMEOUT = httpx.Timeout(10.0)
TRANSFER_TIMEOUT = httpx.Timeout(30.0)
REFRESH_SECONDS = 300.0
#: The most a login may take, however slowly the server answers.
LOGIN_SECONDS = 30.0

_LOGIN_HINT = (
    "Pass email= and password= (or token=) to napari_lablink.connect, set LABLINK_MIBI_EMAIL "
    "and LABLINK_MIBI_PASSWORD, or put email and password in the servers.toml table of this "
    "server"
)


class TrackerSession:
    """One logged-in session with a tracker; starting it validates the token or logs in.

    ``uri`` is the server's (no object), ``label`` how errors name it. ``clock`` (monotonic
    seconds) decides when the token is refreshed; tests pass their own.

    A session pickles (inside the lazy arrays sent to ``dask.distributed`` workers) as what
    another process needs to start the same session: the server, the current token and the
    email and password, if any, so that a worker refreshes or logs in again as this one does.
    Each process keeps one session per login, so its downloads share a pool.
    """

    def __init__(
        self,
        uri: RemoteURI,
        label: str,
        credentials: Credentials,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float | None = REFRESH_SECONDS,
    ) -> None:
        self.uri = uri
        self.label = label
        self._credentials = credentials
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self.token: str | None = credentials.token
        self._refreshed = clock()
        self._lock = threading.RLock()
        self.transport = Transport(
            uri.base_url,
            label=label,
            auth=HeaderAuth(httpx.URL(uri.base_url), "JWT", lambda: self.token),
            secrets=self.secrets,
            timeout=CALL_TIMEOUT,
            retry=TRACKER_RETRY,
        )
        try:
            self._start()
        except BaseException:
            self.transport.close()
            raise

    def __reduce__(self) -> tuple[Any, ...]:
        credentials = replace(self._credentials, token=self.token)
        return (_session_for, (self.uri, self.label, credentials, self._refresh_seconds))

    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a message: the credentials and the current token."""
        return tuple(s for s in (*self._credentials.secrets, self.token) if s)

    def close(self) -> None:
        self.transport.close()

    @property
    def _has_login(self) -> bool:
        return bool(self._credentials.email and self._credentials.password)

    # -- the token ------------------------------------------------------------------------------

    def _start(self) -> None:
        """Validate the given token, or log in; a refused token falls back to the password."""
        if self._credentials.token:
            try:
                self._validate_token()
                return
            except AuthenticationError:
                if not self._has_login:
                    raise
        if not self._has_login:
            raise ConfigurationError(
                "No MIBItracker login is configured", server=self.label, hint=_LOGIN_HINT
            )
        self._login()

    def _validate_token(self) -> None:
        """What the reference client does with a given token: ``OPTIONS /`` must answer 2xx."""
        response = self.transport.request("OPTIONS", "/", expect=(401, 403), timeout=CALL_TIMEOUT)
        if response.status_code in (401, 403):
            raise AuthenticationError(
                f"The tracker refused the token ({self._said(response)})",
                server=self.label,
                hint="Log in again for a new token, or use email and password",
            )

    def _login(self) -> None:
        """``POST api-token-auth/``, never retried (as in the reference client)."""
        with Transport(
            self.uri.base_url,
            label=self.label,
            secrets=self.secrets,
            timeout=CALL_TIMEOUT,
            retry=RetryPolicy(attempts=1),
            max_connections=1,
            deadline=min(configured_seconds(), LOGIN_SECONDS),
        ) as login:
            response = login.request(
                "POST",
                "api-token-auth/",
                json={"email": self._credentials.email, "password": self._credentials.password},
                expect=(400, 401, 403),
                idempotent=False,
            )
        if response.status_code in (400, 401, 403):
            raise AuthenticationError(
                f"The tracker refused the login of {self._credentials.email} "
                f"({self._said(response)})",
                server=self.label,
                hint="Check the email and password (arguments, LABLINK_MIBI_EMAIL and "
                "LABLINK_MIBI_PASSWORD, or servers.toml)",
            )
        self.token = self._token_of(response, "api-token-auth/")
        self._refreshed = self._clock()

    def refresh(self) -> None:
        """Exchange the token for a fresh one (``POST api-token-refresh/``).

        The tracker refuses to refresh an expired token; with a password at hand this logs in
        again instead, otherwise the user is told to.
        """
        with self._lock:
            response = self.transport.request(
                "POST",
                "api-token-refresh/",
                json={"token": self.token},
                expect=(400, 401),
                idempotent=True,
            )
            if response.status_code in (400, 401):
                if self._has_login:
                    self._login()
                    return
                raise AuthenticationError(
                    f"The tracker would not refresh the session token ({self._said(response)})",
                    server=self.label,
                    hint="The token has expired: log in again for a new one",
                )
            self.token = self._token_of(response, "api-token-refresh/")
            self._refreshed = self._clock()

    def _token_of(self, response: httpx.Response, route: str) -> str:
        body = self.json_of(response, route)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise self.transport.protocol_error(f"The answer of {route} holds no token")
        return token

    def _keep(self) -> None:
        """The reference client's rule: refresh once ``refresh`` seconds have passed."""
        if self._refresh_seconds is None:
            return
        with self._lock:
            if self._clock() - self._refreshed >= self._refresh_seconds:
                self.refresh()

    def _said(self, response: httpx.Response) -> str:
        said = describe_response(response, scrub=self.transport.scrub)
        return said or f"HTTP {response.status_code}"

    # -- calls ----------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        route: str,
        *,
        obj: str | None = None,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One call to a tracker route (``"images/7/"``): session kept, retried, typed errors.

        ``kwargs`` go to httpx (``params``, ``json``, ``data``, ``files``, ...). A token the
        tracker no longer accepts although it was not due for refresh (the computer slept, the
        server restarted) is replaced by logging in again, once, when a password is at hand.
        Set ``idempotent=False`` for calls that create something: a lost answer then raises
        :class:`~napari_lablink.client.errors.LostAnswerError` instead of being sent again.
        """
        self._keep()
        kwargs.setdefault("timeout", CALL_TIMEOUT)
        route = route.lstrip("/")
        used = self.token
        response = self.transport.request(
            method, route, idempotent=idempotent, obj=obj, expect=(401,), **kwargs
        )
        if response.status_code != 401:
            return response
        if not self._has_login:
            raise self.transport.error_for(response, obj)
        with self._lock:
            if self.token == used:  # no other thread has logged in again meanwhile
                self._login()
        return self.transport.request(method, route, idempotent=idempotent, obj=obj, **kwargs)

    def json(self, method: str, route: str, *, obj: str | None = None, **kwargs: Any) -> Any:
        """The JSON answer of :meth:`request` (``{}`` for an empty one)."""
        return self.json_of(self.request(method, route, obj=obj, **kwargs), route, obj)

    def json_object(
        self, method: str, route: str, *, obj: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """:meth:`json` of a route that answers one object."""
        body = self.json(method, route, obj=obj, **kwargs)
        if not isinstance(body, dict):
            raise self.transport.protocol_error(f"The tracker answered {route} with no object", obj)
        return body

    def json_of(self, response: httpx.Response, route: str, obj: str | None = None) -> Any:
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise self.transport.protocol_error(
                f"The tracker answered {route} with something that is not JSON", obj
            ) from None

    def as_list(self, body: Any, route: str) -> list[Any]:
        """A ``paging=no`` answer is a bare list; a page's ``results`` are accepted too."""
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            return list(body["results"])
        if not isinstance(body, list):
            raise self.transport.protocol_error(f"The tracker answered {route} with no list")
        return body

    def transfer(
        self,
        method: str,
        url: str,
        *,
        obj: str | None = None,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A request to a signed storage URL: 30 s timeout, and the token is never sent.

        The whole transfer ends within ``deadline`` seconds (default: ten times the usual
        limit of a call, for whole MIBItiffs).

        The URL is absolute and on storage's origin, so the session's auth leaves it alone; if a
        tracker ever signs URLs on its own origin, the token is still kept out by sending the
        request without the session's auth.
        """
        if not url.startswith(("http://", "https://")):
            raise self.transport.protocol_error(f"The signed URL is not absolute: {url[:40]}", obj)
        return self.transport.request(
            method,
            url,
            idempotent=True,
            obj=obj,
            timeout=TRANSFER_TIMEOUT,
            auth=None,
            max_bytes=None,  # whole MIBItiffs; the deadline still bounds the time
            deadline=10 * configured_seconds() if deadline is None else deadline,
            **kwargs,
        )

    def signed_url(self, route: str, obj: str | None, **params: Any) -> str:
        body = self.json("GET", route, obj=obj, params=params)
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            raise self.transport.protocol_error(f"The answer of {route} holds no signed URL", obj)
        return url

    def download_file(self, path: str) -> io.BytesIO:
        """A file of the tracker's storage (``{run.path}/{folder}/...``), rewound."""
        obj = f"file {path}"
        url = self.signed_url("download/", obj, path=path)
        return io.BytesIO(self.transfer("GET", url, obj=obj).content)


_sessions: dict[tuple[RemoteURI, str, Credentials, float | None], TrackerSession] = {}
_sessions_lock = threading.Lock()


def _session_for(
    uri: RemoteURI, label: str, credentials: Credentials, refresh_seconds: float | None
) -> TrackerSession:
    """This process's session for a login, started on first use (a worker's, usually).

    With a password the session renews its own token, so a newer token does not need another.
    """
    login = credentials.email and credentials.password
    key = (uri, label, replace(credentials, token=None) if login else credentials, refresh_seconds)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None or session.transport.closed:
            session = TrackerSession(uri, label, credentials, refresh_seconds=refresh_seconds)
            _sessions[key] = session
        return session
