"""A total time limit for an operation, whatever the server does byte by byte.

Socket timeouts bound each read, not the whole answer: a server that trickles one byte a second
never trips a 10 s read timeout and can hold a call for minutes. :func:`within` opens a deadline
for the calling thread (nested deadlines keep the earliest), and :class:`DeadlineBackend` gives
httpx's connection pool sockets that never wait past it, for connecting, TLS, sending and every
read of headers and body alike.

The limit is :data:`DEFAULT_SECONDS` per HTTP operation (all retries included), or
``LABLINK_DEADLINE`` seconds from the environment.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore

__all__ = ["DEFAULT_SECONDS", "DeadlineBackend", "configured_seconds", "remaining", "within"]

#: What one operation may take at most unless configured otherwise.
DEFAULT_SECONDS = 60.0
_ENV = "LABLINK_DEADLINE"

_local = threading.local()


def configured_seconds(default: float = DEFAULT_SECONDS) -> float:
    """``LABLINK_DEADLINE`` when it is a positive number of seconds, else ``default``."""
    value = os.environ.get(_ENV, "").strip()
    try:
        seconds = float(value) if value else default
    except ValueError:
        return default
    return seconds if seconds > 0 else default


def remaining() -> float | None:
    """Seconds left before the calling thread's deadline, or None when it has none."""
    ends: list[float] = getattr(_local, "ends", [])
    return min(ends) - time.monotonic() if ends else None


@contextlib.contextmanager
def within(seconds: float | None) -> Iterator[None]:
    """Everything the calling thread sends or receives inside ends within ``seconds``."""
    if seconds is None:
        yield
        return
    ends: list[float] = getattr(_local, "ends", None) or []
    _local.ends = ends
    ends.append(time.monotonic() + seconds)
    try:
        yield
    finally:
        ends.pop()


def _bounded(timeout: float | None) -> float | None:
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise httpcore.ReadTimeout("the operation's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every wait is cut to what is left of the deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout))
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend with every stream bound by the thread's deadline."""

    def __init__(self, backend: httpcore.NetworkBackend | None = None) -> None:
        self._backend = backend or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host, port, _bounded(timeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_unix_socket(path, _bounded(timeout), socket_options)
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)
