"""The one HTTP session per server: pooling, timeouts, retries, auth and error mapping.

Every protocol package talks to its server through a :class:`Transport`, so the rules of
docs/architecture.md ("Transport") hold in one place:

- one pooled ``httpx.Client``, explicit connect/read timeouts on every call;
- bounded retries with exponential backoff and full jitter on 502/503/504 and connection errors,
  honouring ``Retry-After``; requests that are not idempotent are retried only when they cannot
  have reached the server (connection refused), so a retry never creates a second object;
- the credential goes only to the server's own origin (never to signed URLs or redirect targets);
- failures become the typed errors of :mod:`napari_lablink.client.errors`, scrubbed of secrets.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from napari_lablink.client.errors import (
    AuthenticationError,
    ClosedConnectionError,
    LablinkError,
    NotFoundError,
    ProtocolError,
    ServerError,
    ServerUnavailableError,
    plain_text,
    scrub,
)

__all__ = ["HeaderAuth", "RetryPolicy", "Transport", "describe_response"]

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({502, 503, 504})
#: Errors raised before a single byte of the request can have reached the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: Errors after which the server may or may not have acted on the request.
_MAYBE_SENT = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadTimeout)


class _RedactQuery(logging.Filter):
    """Strip query strings from httpx's request log lines: signed URLs carry credentials there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(_without_query(a) for a in record.args)
        return True


def _without_query(value: object) -> object:
    if isinstance(value, httpx.URL):
        return value.copy_with(query=None) if value.query else value
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return value.split("?", 1)[0]
    return value


logging.getLogger("httpx").addFilter(_RedactQuery())


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. The defaults keep a flaky server from stalling napari."""

    attempts: int = 4
    backoff: float = 0.2
    max_delay: float = 5.0
    total: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after  # the caller's deadline bounds it
        return random.uniform(0, min(self.max_delay, self.backoff * 2**attempt))


class HeaderAuth(httpx.Auth):
    """Adds ``Authorization: <scheme> <credential>`` to requests for one origin only.

    The credential is read through a callable so a refreshed token is picked up without
    rebuilding the client. Requests to any other origin (signed storage URLs, redirects) are sent
    untouched.
    """

    def __init__(self, origin: httpx.URL, scheme: str, credential: Callable[[], str | None]):
        self._origin = (origin.scheme, origin.host, origin.port)
        self._scheme = scheme
        self._credential = credential

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = request.url
        if (url.scheme, url.host, url.port) == self._origin:
            credential = self._credential()
            if credential:
                request.headers["Authorization"] = f"{self._scheme} {credential}"
        yield request


def describe_response(response: httpx.Response, limit: int = 300) -> str:
    """The server's own words about an error: ``detail``/``message`` of a JSON body, or its text."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:limit] if text and "<html" not in text[:200].lower() else ""
    if isinstance(body, dict):
        for key in ("detail", "details", "message", "error", "errors", "non_field_errors"):
            if key in body:
                return plain_text(body[key])[:limit]
    return plain_text(body)[:limit]


class Transport:
    """One server's HTTP session.

    ``label`` is how the server is named in errors (``mikro+http://127.0.0.1:8080``); ``secrets``
    returns the credentials currently in use, so every message can be scrubbed of them.
    """

    def __init__(
        self,
        base_url: str,
        *,
        label: str,
        auth: httpx.Auth | None = None,
        secrets: Callable[[], Iterable[str | None]] = tuple,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 16,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.label = label
        self.retry = retry or RetryPolicy()
        self._secrets = secrets
        self._lock = threading.Lock()
        self._client: httpx.Client | None = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            timeout=timeout or httpx.Timeout(30.0, connect=5.0),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            follow_redirects=True,
            headers={"User-Agent": "napari-lablink"},
        )

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._client is None

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool | None = None,
        obj: str | None = None,
        expect: Iterable[int] = (),
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request with retries; return the response or raise a typed error.

        ``url`` is relative to the server or absolute (a signed URL: it gets no credential).
        ``idempotent`` defaults to the HTTP method's nature; set it for POSTs that only read
        (GraphQL queries). ``obj`` names the object for error messages. Status codes in
        ``expect`` are returned instead of raised.
        """
        client = self._client
        if client is None:
            raise ClosedConnectionError("The connection is closed", server=self.label, obj=obj)
        if idempotent is None:
            idempotent = method.upper() in {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
        deadline = time.monotonic() + self.retry.total
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = client.request(method, url, **kwargs)
            except _NOT_SENT as exc:
                failure: Exception | None = exc
            except _MAYBE_SENT as exc:
                if not idempotent:
                    raise self._unavailable(exc, obj, retried=False) from None
                failure = exc
            except httpx.TimeoutException as exc:
                failure = exc
            except httpx.HTTPError as exc:
                raise self._unavailable(exc, obj, retried=False) from None
            else:
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code >= 400 and response.status_code not in expect:
                        raise self.error_for(response, obj)
                    return response
                failure = None
                retry_after = _retry_after(response)
                last_response = response
            delay = self.retry.delay(attempt, retry_after)
            if attempt >= self.retry.attempts or time.monotonic() + delay > deadline:
                if failure is None:
                    raise self.error_for(last_response, obj)
                raise self._unavailable(failure, obj, retried=attempt > 1) from None
            log.debug(
                "retrying %s %s on %s (attempt %d) in %.2fs",
                method,
                "/" + url.split("?", 1)[0].lstrip("/"),
                self.label,
                attempt,
                delay,
            )
            time.sleep(delay)

    def error_for(self, response: httpx.Response, obj: str | None = None) -> LablinkError:
        """The typed error for an HTTP error response, with the server's own message."""
        status = response.status_code
        said = self.scrub(describe_response(response))
        detail = f"HTTP {status}" + (f": {said}" if said else "")
        if status in (401, 403):
            return AuthenticationError(
                f"The server refused the credentials ({detail})", server=self.label, obj=obj
            )
        if status == 404:
            return NotFoundError(f"Not found ({detail})", server=self.label, obj=obj)
        if status >= 500:
            return ServerError(
                f"The server failed ({detail})",
                server=self.label,
                obj=obj,
                hint="Try again later; if it persists, ask the server's administrator",
            )
        return ServerError(
            f"The server rejected the request ({detail})", server=self.label, obj=obj
        )

    def protocol_error(self, what: str, obj: str | None = None) -> ProtocolError:
        return ProtocolError(self.scrub(what), server=self.label, obj=obj)

    def scrub(self, text: str) -> str:
        return scrub(text, self._secrets())

    def _unavailable(self, exc: Exception, obj: str | None, *, retried: bool) -> LablinkError:
        kind = type(exc).__name__
        reason = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
        tail = " after several attempts" if retried else ""
        return ServerUnavailableError(
            f"The server {reason}{tail} ({kind})", server=self.label, obj=obj
        )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None
