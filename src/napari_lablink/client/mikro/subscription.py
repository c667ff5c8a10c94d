"""A GraphQL subscription over a websocket (graphql-transport-ws), kept alive in a thread.

mikro streams changes on its GraphQL URL with the ``ws`` scheme. :class:`Subscription` connects
there, authenticates in ``connection_init`` (and with the usual header on the handshake, for
gateways that check it), subscribes, and hands every ``next`` payload to a callback from its own
thread. When the connection drops it reconnects with growing pauses and calls ``on_reconnect``,
since whatever changed meanwhile was never streamed. A refused token or a refused query ends it
with ``on_error``: retrying would only be refused again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from napari_lablink.client.errors import (
    AuthenticationError,
    LablinkError,
    ProtocolError,
    ServerUnavailableError,
)

__all__ = ["SUBPROTOCOL", "Subscription", "websocket_url"]

log = logging.getLogger(__name__)

SUBPROTOCOL = "graphql-transport-ws"
#: Close codes of graphql-transport-ws after which reconnecting cannot help.
_FATAL = {4400: "bad message", 4401: "unauthorized", 4403: "forbidden", 4409: "duplicate id"}
_FIRST_PAUSE, _LONGEST_PAUSE = 0.2, 5.0
_OPEN_TIMEOUT = 10.0
#: How often the receiving loop looks whether it was asked to stop.
_POLL = 0.25


def websocket_url(graphql_url: str) -> str:
    """``http(s)://.../graphql`` -> ``ws(s)://.../graphql``."""
    if graphql_url.startswith("https://"):
        return "wss://" + graphql_url.removeprefix("https://")
    return "ws://" + graphql_url.removeprefix("http://")


class _Fatal(Exception):
    def __init__(self, error: LablinkError) -> None:
        super().__init__(str(error))
        self.error = error


class Subscription:
    """One live subscription; :meth:`start` it, :meth:`stop` it (also by ``with``)."""

    def __init__(
        self,
        url: str,
        query: str,
        variables: dict[str, Any],
        *,
        token: Callable[[], str | None],
        on_data: Callable[[dict[str, Any]], None],
        on_reconnect: Callable[[], None] | None = None,
        on_error: Callable[[LablinkError], None] | None = None,
        label: str = "",
    ) -> None:
        self.url = url
        self._query, self._variables = query, variables
        self._token = token
        self._on_data, self._on_reconnect, self._on_error = on_data, on_reconnect, on_error
        self._label = label or url
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._socket: ClientConnection | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="lablink-subscription", daemon=True)
        #: How many times the connection was made again after a drop.
        self.reconnects = 0

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> Subscription:
        self._thread.start()
        return self

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the server acknowledged the subscription (True) or ``timeout`` passed."""
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            socket = self._socket
        if socket is not None:
            try:
                socket.close()
            except (OSError, WebSocketException):
                log.debug("closing the subscription socket failed", exc_info=True)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> Subscription:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        pause = _FIRST_PAUSE
        first = True
        while not self._stop.is_set():
            try:
                self._session(first)
                pause = _FIRST_PAUSE  # it ran: the next drop starts the pauses afresh
            except _Fatal as fatal:
                if self._on_error is not None:
                    self._on_error(fatal.error)
                return
            except (OSError, WebSocketException, TimeoutError, ValueError) as exc:
                log.info("subscription to %s dropped (%s); reconnecting", self._label, exc)
            finally:
                self._connected.clear()
                with self._lock:
                    self._socket = None
            first = False
            if self._stop.wait(pause):
                return
            pause = min(pause * 2, _LONGEST_PAUSE)

    def _session(self, first: bool) -> None:
        token = self._token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            socket = connect(
                self.url,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers=headers,
                open_timeout=_OPEN_TIMEOUT,
                max_size=2**24,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise _Fatal(
                    AuthenticationError(
                        "The server refused the token for live updates", server=self._label
                    )
                ) from None
            if status in (400, 404, 426):
                raise _Fatal(
                    ProtocolError(
                        f"The server does not offer {SUBPROTOCOL} subscriptions here "
                        f"(HTTP {status})",
                        server=self._label,
                    )
                ) from None
            raise
        with self._lock:
            self._socket = socket
        if self._stop.is_set():
            socket.close()
            return
        with socket:
            socket.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
            self._expect_ack(socket)
            payload = {"query": self._query, "variables": self._variables}
            socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            self._connected.set()
            if not first:
                self.reconnects += 1
                if self._on_reconnect is not None:
                    self._on_reconnect()
            self._receive(socket)

    def _expect_ack(self, socket: ClientConnection) -> None:
        while True:
            message = self._next(socket, deadline=_OPEN_TIMEOUT)
            if message is None:
                raise TimeoutError("no connection_ack")
            if message.get("type") == "connection_ack":
                return
            if message.get("type") == "ping":
                socket.send(json.dumps({"type": "pong"}))

    def _next(self, socket: ClientConnection, deadline: float | None) -> dict[str, Any] | None:
        """The next message, None after ``deadline`` seconds or when asked to stop."""
        waited = 0.0
        while not self._stop.is_set():
            try:
                raw = socket.recv(timeout=_POLL)
            except TimeoutError:
                waited += _POLL
                if deadline is not None and waited >= deadline:
                    return None
                continue
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
                if code in _FATAL:
                    error: LablinkError = (
                        AuthenticationError(
                            "The server refused the token for live updates", server=self._label
                        )
                        if code in (4401, 4403)
                        else ProtocolError(
                            f"The server ended live updates: {_FATAL[code]} ({code})",
                            server=self._label,
                        )
                    )
                    raise _Fatal(error) from None
                raise
            message = json.loads(raw)
            if not isinstance(message, dict):
                raise ValueError("a subscription message that is not a JSON object")
            return message
        return None

    def _receive(self, socket: ClientConnection) -> None:
        while not self._stop.is_set():
            message = self._next(socket, deadline=None)
            if message is None:
                return
            kind = message.get("type")
            if kind == "ping":
                socket.send(json.dumps({"type": "pong"}))
            elif kind == "next":
                payload = message.get("payload") or {}
                if payload.get("errors"):
                    log.warning("subscription event with errors from %s", self._label)
                if isinstance(payload.get("data"), dict):
                    try:
                        self._on_data(payload["data"])
                    except Exception:  # a failing consumer must not end the subscription
                        log.exception("handling a subscription event failed")
            elif kind == "error":
                said = "; ".join(
                    str(e.get("message", e)) if isinstance(e, dict) else str(e)
                    for e in message.get("payload") or []
                )
                raise _Fatal(
                    ProtocolError(
                        f"The server refused the subscription ({said})", server=self._label
                    )
                )
            elif kind == "complete":
                raise _Fatal(
                    ServerUnavailableError("The server ended live updates", server=self._label)
                )
