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
import functools
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from napari_lablink.client.deadline import DeadlineBackend, configured_seconds, remaining, within
from napari_lablink.client.errors import (
    AuthenticationError,
    ClosedConnectionError,
    LablinkError,
    LostAnswerError,
    NotFoundError,
    ProtocolError,
    ServerError,
    ServerFailedError,
    ServerUnavailableError,
    cut,
    plain_text,
    scrub,
)

__all__ = ["HeaderAuth", "RetryPolicy", "Transport", "describe_response"]

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({502, 503, 504})
#: The most an answer may hold unless a call says otherwise: JSON answers are far smaller, and a
#: runaway body must fail fast instead of filling memory.
MAX_BODY_BYTES = 64 * 2**20
_MAX_REDIRECTS = 10
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
    """How often and how long to retry. The defaults keep a flaky server from stalling napari.

    A refused connection (nobody listens, or the host name does not resolve) is tried again only
    ``refused_attempts`` times in all, at most ``refused_delay`` apart: a stopped server does
    not come back within a backoff, and napari slices wait for the answer.
    """

    attempts: int = 4
    backoff: float = 0.2
    max_delay: float = 5.0
    total: float = 30.0
    refused_attempts: int = 2
    refused_delay: float = 0.05

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


def describe_response(
    response: httpx.Response, limit: int = 300, scrub: Callable[[str], str] = str
) -> str:
    """The server's own words about an error: ``detail``/``message`` of a JSON body, or its text.

    ``scrub`` removes secrets before the text is cut to ``limit`` characters, so no part of a
    secret survives at the cut.
    """
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        if not text or "<html" in text[:200].lower():
            return ""
        return cut(scrub(text), limit)
    if isinstance(body, dict):
        for key in ("detail", "details", "message", "error", "errors", "non_field_errors"):
            if key in body:
                return cut(scrub(plain_text(body[key])), limit)
    return cut(scrub(plain_text(body)), limit)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context, made once: loading the CA bundle costs ~0.1 s of CPU, which
    every new connection (each open of an image after a reconnect) would otherwise pay again."""
    return httpx.create_ssl_context()


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
        deadline: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.label = label
        self.retry = retry or RetryPolicy()
        #: Seconds one call may take at most, retries and slow answers included.
        self.deadline = deadline if deadline is not None else configured_seconds()
        self._secrets = secrets
        self._lock = threading.Lock()
        self._in_flight = 0  # calls using the client now
        self._closing: httpx.Client | None = None  # closed, to be shut when they end
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client: httpx.Client | None = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            timeout=timeout or httpx.Timeout(30.0, connect=5.0),
            limits=limits,
            follow_redirects=False,
            headers={"User-Agent": "napari-lablink"},
            verify=_tls_context(),
        )
        _bind_to_deadlines(self._client)

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._client is None

    def close(self) -> None:
        """No new calls; the pool's sockets are shut once the calls under way have ended.

        Shutting a socket another thread is reading hangs that thread until its timeout, and the
        file descriptor it still writes to may by then belong to a new connection (to another
        server). So a widget that drops a connection while a background job uses it only stops
        further calls; the job's own call ends normally.
        """
        with self._lock:
            client, self._client = self._client, None
            if client is not None and self._in_flight:
                self._closing, client = client, None
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
        max_bytes: int | None = MAX_BODY_BYTES,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request with retries; return the response (body read) or raise a typed error.

        ``url`` is relative to the server or absolute (a signed URL: it gets no credential).
        ``idempotent`` defaults to the HTTP method's nature; set it for POSTs that only read
        (GraphQL queries). A request that creates something and whose answer is lost raises
        :class:`LostAnswerError`: only the caller can look whether it took effect. ``obj``
        names the object for error messages. Status codes in ``expect`` are returned instead
        of raised. The answer may hold at most ``max_bytes`` (None: no limit), and the whole
        call, retries included, ends within ``deadline`` seconds (default: the transport's).
        """
        with self._lock:
            client = self._client
            if client is None:
                raise ClosedConnectionError("The connection is closed", server=self.label, obj=obj)
            self._in_flight += 1
        if idempotent is None:
            idempotent = method.upper() in {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
        seconds = self.deadline if deadline is None else deadline
        try:
            with within(seconds):
                return self._request(
                    client, method, url, idempotent, obj, expect, max_bytes, kwargs
                )
        finally:
            with self._lock:
                self._in_flight -= 1
                last = self._closing if not self._in_flight else None
                if last is not None:
                    self._closing = None
            if last is not None:
                last.close()

    def _request(
        self,
        client: httpx.Client,
        method: str,
        url: str,
        idempotent: bool,
        obj: str | None,
        expect: Iterable[int],
        max_bytes: int | None,
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        deadline = time.monotonic() + self.retry.total
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1 and self._client is None:  # closed meanwhile: no more attempts
                raise ClosedConnectionError("The connection is closed", server=self.label, obj=obj)
            retry_after: float | None = None
            try:
                response = self._send(client, method, url, obj, max_bytes, kwargs)
            except _NOT_SENT as exc:
                if _is_tls_mismatch(exc):
                    raise self._unavailable(exc, obj, retried=False) from None
                failure: Exception | None = exc
            except _MAYBE_SENT as exc:
                if not idempotent:
                    raise self._unavailable(exc, obj, retried=False, lost=True) from None
                failure = exc
            except httpx.TimeoutException as exc:
                failure = exc
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
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
            refused = isinstance(failure, httpx.ConnectError)
            if refused:
                delay = min(delay, self.retry.refused_delay)
            left = remaining()
            if (
                attempt >= self.retry.attempts
                or (refused and attempt >= self.retry.refused_attempts)
                or time.monotonic() + delay > deadline
                or (left is not None and delay >= left)
            ):
                if failure is None:
                    raise self.error_for(last_response, obj)
                if isinstance(failure, _MAYBE_SENT) and not idempotent:
                    raise self._unavailable(failure, obj, retried=True, lost=True) from None
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

    def _send(
        self,
        client: httpx.Client,
        method: str,
        url: str,
        obj: str | None,
        max_bytes: int | None,
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        """One attempt: follow redirects by hand, read the body within ``max_bytes``.

        A redirect to another origin is followed only for requests without a body: a login's
        or an upload's body (a password, data) never goes to a host the user did not name.
        """
        options = dict(kwargs)
        auth = options.pop("auth", httpx.USE_CLIENT_DEFAULT)
        request = client.build_request(method, url, **options)
        origin = _origin(request.url)
        for _ in range(_MAX_REDIRECTS + 1):
            response = client.send(request, auth=auth, follow_redirects=False, stream=True)
            following = response.next_request
            if following is None:
                return self._read(response, obj, max_bytes)
            response.close()
            if _origin(following.url) != origin and _has_body(following):
                raise ServerError(
                    f"The server redirected a {method.upper()} request to another address "
                    f"({_origin_text(following.url)}); it was not sent there again",
                    server=self.label,
                    obj=obj,
                    hint="Credentials and data go only to the server the URI names; check the "
                    "server's address (scheme, host and port)",
                )
            request = following
        raise ServerError("The server redirected too many times", server=self.label, obj=obj)

    def _read(self, response: httpx.Response, obj: str | None, limit: int | None) -> httpx.Response:
        """The response with its body read, refusing bodies above ``limit`` bytes early."""
        try:
            declared = int(response.headers.get("Content-Length", "") or -1)
        except ValueError:
            declared = -1
        if limit is not None and declared > limit:
            response.close()
            raise self._too_large(limit, obj)
        parts: list[bytes] = []
        size = 0
        try:
            for part in response.iter_bytes():
                size += len(part)
                if limit is not None and size > limit:
                    raise self._too_large(limit, obj)
                parts.append(part)
        finally:
            response.close()
        response._content = b"".join(parts)  # what httpx's own read() stores
        return response

    def _too_large(self, limit: int, obj: str | None) -> ProtocolError:
        return ProtocolError(
            f"The server's answer is larger than {limit / 2**20:.0f} MiB, far more than this "
            "call can expect; it was not read",
            server=self.label,
            obj=obj,
        )

    def error_for(self, response: httpx.Response, obj: str | None = None) -> LablinkError:
        """The typed error for an HTTP error response, with the server's own message."""
        status = response.status_code
        said = describe_response(response, scrub=self.scrub)
        detail = f"HTTP {status}" + (f": {said}" if said else "")
        if status in (401, 403):
            return AuthenticationError(
                f"The server refused the credentials ({detail})", server=self.label, obj=obj
            )
        if status == 404:
            return NotFoundError(f"Not found ({detail})", server=self.label, obj=obj)
        if status >= 500:
            return ServerFailedError(
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

    def _unavailable(
        self, exc: Exception, obj: str | None, *, retried: bool, lost: bool = False
    ) -> LablinkError:
        kind = type(exc).__name__
        reason = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
        tail = " after several attempts" if retried else ""
        if _is_tls_mismatch(exc):
            return ServerUnavailableError(
                f"The TLS handshake failed ({kind})",
                server=self.label,
                obj=obj,
                hint="The server may speak plain HTTP on this port: write the scheme with "
                "+http (for example mikro+http://HOST:PORT)",
            )
        if isinstance(exc, httpx.InvalidURL):
            return ServerUnavailableError(
                "The server's address is not a valid URL",
                server=cut(self.label, 80),
                obj=obj,
                hint="Check the host and port",
            )
        if lost:
            how = "timed out" if isinstance(exc, httpx.TimeoutException) else "hung up"
            return LostAnswerError(
                f"The server {how} before answering ({kind}); it may or may not have acted "
                "on the request",
                server=self.label,
                obj=obj,
            )
        return ServerUnavailableError(
            f"The server {reason}{tail} ({kind})", server=self.label, obj=obj
        )


def _is_tls_mismatch(exc: Exception) -> bool:
    text = str(exc)
    return isinstance(exc, httpx.ConnectError) and (
        "SSL" in text or "WRONG_VERSION_NUMBER" in text or "record layer" in text
    )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def _origin_text(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")


def _has_body(request: httpx.Request) -> bool:
    if request.method.upper() in ("GET", "HEAD", "OPTIONS"):
        return False
    try:
        return bool(request.content)
    except httpx.RequestNotRead:
        return True


def _bind_to_deadlines(client: httpx.Client) -> None:
    """Make the client's sockets never wait past the calling operation's deadline.

    httpx builds its transports (and proxy transports from the environment) itself; only their
    connection pools' network backend is replaced, so TLS and proxy settings stay httpx's.
    """
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, DeadlineBackend):
            pool._network_backend = DeadlineBackend(backend)  # type: ignore[union-attr]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None
